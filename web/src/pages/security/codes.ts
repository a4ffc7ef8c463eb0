// What the two-factor and API key forms check before sending (mirroring the API: the TOTP
// code and recovery code formats of services/users/two_factor.py, the scopes a role may
// grant of berth/api_keys.py); the API still checks everything and its refusal is shown.
import type { TFunction } from 'i18next';
import type { Role } from '../../auth/token';

/** A code as typed: spaces and hyphens dropped, lower case (as the API reads it). */
export function normaliseCode(value: string): string {
  return value.replace(/[\s-]/g, '').toLowerCase();
}

export const TOTP = /^\d{6}$/;
// ten recovery codes of 16 characters from a-z and 2-7, shown as xxxx-xxxx-xxxx-xxxx
export const RECOVERY = /^[a-z2-7]{16}$/;

/** The login's second step, disabling, new recovery codes: a current code or a recovery code. */
export function secondFactor(t: TFunction) {
  return (value: string) => {
    const code = normaliseCode(value);
    if (!code) return t('validation.required');
    return TOTP.test(code) || RECOVERY.test(code) ? null : t('twoFactor.validation.code');
  };
}

/** Confirming an enrolment: only the authenticator app's six digits (no recovery codes yet). */
export function totpCode(t: TFunction) {
  return (value: string) => {
    const code = normaliseCode(value);
    if (!code) return t('validation.required');
    return TOTP.test(code) ? null : t('twoFactor.validation.totp');
  };
}

export const SCOPES = ['read', 'containers', 'billing', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scopes a key of someone with ``role`` may carry (berth/api_keys.py ROLE_SCOPES). */
export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  user: ['read', 'containers', 'billing'],
  distributor: ['read', 'containers', 'billing'],
  admin: ['read', 'containers', 'billing', 'admin'],
};

/** Offer ``text`` as a plain-text download named ``filename``. */
export function downloadText(filename: string, text: string): void {
  const blob = new Blob([text], { type: 'text/plain;charset=utf-8' });
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
