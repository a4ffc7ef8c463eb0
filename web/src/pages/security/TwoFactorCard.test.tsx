import { fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../../auth/AuthContext';
import { currentSession, signIn, signOut } from '../../auth/token';
import i18n from '../../i18n';
import { fakeToken, jsonResponse, renderWithApp } from '../../test/render';
import { TwoFactorCard } from './TwoFactorCard';

const CODES = Array.from({ length: 10 }, (_, i) => `aaaa-bbbb-cccc-dd${String.fromCharCode(97 + i)}${i % 8}`);
const fresh = fakeToken({ sub: '3', role: 'user', username: 'kim', exp: Date.now() / 1000 + 900, sid: 'new' });

function api() {
  let on = false;
  const status = () => ({ enabled: on, pending: false, enabled_at: on ? '2026-11-02T00:00:00Z' : null,
    recovery_codes_left: on ? 10 : 0, required: false });
  return vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = String(input);
    if (url === '/api/2fa') return jsonResponse(200, status());
    if (url === '/api/2fa/enrol') {
      return jsonResponse(200, { message: 'scan', otpauth_uri: 'otpauth://totp/Berth:kim?secret=JBSWY3DPEHPK3PXP',
        qr_svg: 'data:image/svg+xml;base64,PHN2Zy8+', secret: 'JBSWY3DPEHPK3PXP' });
    }
    if (url === '/api/2fa/confirm') {
      const { code } = JSON.parse(String(init?.body));
      if (code !== '123456') return jsonResponse(400, { error: 'Invalid two-factor code', details: [{ field: 'code', message: 'is not a current two-factor code or an unused recovery code' }] });
      on = true;
      return jsonResponse(200, { message: 'on', token: fresh, expires_in: 900, recovery_codes: CODES });
    }
    return jsonResponse(404, { error: 'Not found' });
  });
}

beforeEach(async () => {
  await i18n.changeLanguage('en');
  signIn(fakeToken({ sub: '3', role: 'user', username: 'kim', exp: Date.now() / 1000 + 600 }));
});

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('turning two-factor sign-in on', () => {
  it('shows the QR code and secret, then the recovery codes once, and signs in with the fresh token', async () => {
    api();
    renderWithApp(<AuthProvider><TwoFactorCard /></AuthProvider>);
    expect((await screen.findByTestId('two-factor-status')).textContent).toBe('Off');
    fireEvent.change(screen.getByLabelText(/Your password/), { target: { value: 'kim password 1' } });
    fireEvent.click(screen.getByRole('button', { name: 'Set up two-factor sign-in' }));
    const qr = await screen.findByAltText(/QR code for an authenticator app/);
    expect(qr.getAttribute('src')).toBe('data:image/svg+xml;base64,PHN2Zy8+');
    expect(screen.getByTestId('secret').textContent).toBe('JBSW Y3DP EHPK 3PXP');

    fireEvent.change(screen.getByLabelText(/Code from the app/), { target: { value: 'abcdef' } });
    fireEvent.click(screen.getByRole('button', { name: 'Turn on' }));
    expect(await screen.findByText('The six digits the app shows')).toBeTruthy(); // not sent
    fireEvent.change(screen.getByLabelText(/Code from the app/), { target: { value: '654321' } });
    fireEvent.click(screen.getByRole('button', { name: 'Turn on' }));
    expect(await screen.findByText('is not a current two-factor code or an unused recovery code')).toBeTruthy();

    fireEvent.change(screen.getByLabelText(/Code from the app/), { target: { value: '123 456' } });
    fireEvent.click(screen.getByRole('button', { name: 'Turn on' }));
    const shown = await screen.findAllByTestId('recovery-code');
    expect(shown.map((code) => code.textContent)).toEqual(CODES);
    expect(screen.getByText('Shown only now')).toBeTruthy();
    expect(currentSession()?.token).toBe(fresh); // the old token ended with the change
    expect(screen.getByRole('button', { name: 'Download (.txt)' })).toBeTruthy();

    fireEvent.click(screen.getByRole('button', { name: 'I have saved them' }));
    await waitFor(() => expect(screen.queryAllByTestId('recovery-code')).toHaveLength(0));
    expect((await screen.findByTestId('codes-left')).textContent).toBe('10 unused recovery codes left.');
    expect(screen.getByTestId('two-factor-status').textContent).toBe('On');
    for (const code of CODES) expect(document.body.textContent).not.toContain(code);
  });
});
