// Client-side checks that mirror the request schemas of web/openapi.json (AddUser, Login,
// RedeemSerial, CreateContainer), so a form is refused before it is sent; the API still
// checks everything and its refusal is shown as it words it.
import type { UseFormReturnType } from '@mantine/form';
import type { TFunction } from 'i18next';
import { ApiError } from '../api/fetcher';

export const USERNAME = /^[A-Za-z0-9_.-]+$/;
export const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
// what pydantic's EmailStr accepts, roughly: something@domain.tld without spaces
export const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function username(t: TFunction) {
  return (value: string) => {
    if (!value) return t('validation.required');
    if (value.length < 3 || value.length > 32) return t('validation.usernameLength');
    if (!USERNAME.test(value)) return t('validation.usernameChars');
    return null;
  };
}

export function newPassword(t: TFunction) {
  return (value: string) => {
    if (!value) return t('validation.required');
    if (value.length < 8 || value.length > 128) return t('validation.passwordLength');
    return null;
  };
}

export function required(t: TFunction, max: number) {
  return (value: string) => (!value ? t('validation.required') : value.length > max ? t('validation.tooLong', { max }) : null);
}

export function email(t: TFunction) {
  return (value: string) => {
    if (!value) return t('validation.required');
    if (value.length > 254 || !EMAIL.test(value)) return t('validation.email');
    return null;
  };
}

/** Put the API's per-field messages (`details`) on the form's fields. */
export function showFieldErrors(form: Pick<UseFormReturnType<object>, 'getValues'> & {
  setFieldError: (path: string, error: string) => void;
}, error: unknown) {
  if (!(error instanceof ApiError)) return;
  const fields = Object.keys(form.getValues());
  for (const detail of error.details) {
    if (fields.includes(detail.field)) form.setFieldError(detail.field, detail.message);
  }
}
