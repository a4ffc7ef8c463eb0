import { fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import i18n from '../i18n';
import { currentSession, signOut } from '../auth/token';
import { fakeToken, jsonResponse, renderWithApp } from '../test/render';
import Login from './Login';

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('the sign-in form', () => {
  it('refuses an empty form without sending it', async () => {
    await i18n.changeLanguage('en');
    const fetch = vi.spyOn(globalThis, 'fetch');
    renderWithApp(<Login />, { route: '/login' });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findAllByText('Required')).toHaveLength(2);
    expect(fetch).not.toHaveBeenCalled();
  });

  it("shows the API's refusal, then signs in with the token it returns", async () => {
    await i18n.changeLanguage('en');
    const token = fakeToken({ sub: '3', role: 'distributor', username: 'dora', exp: Date.now() / 1000 + 60 });
    vi.spyOn(globalThis, 'fetch')
      .mockResolvedValueOnce(jsonResponse(401, { error: 'Invalid username or password' }))
      .mockResolvedValueOnce(jsonResponse(200, { message: 'ok', token, expires_in: 60 }));
    renderWithApp(<Login />, { route: '/login' });
    fireEvent.change(screen.getByLabelText(/Username/), { target: { value: 'dora' } });
    fireEvent.change(screen.getByLabelText(/Password/), { target: { value: 'wrong' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Invalid username or password')).toBeTruthy();
    expect(currentSession()).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await vi.waitFor(() => expect(currentSession()?.role).toBe('distributor'));
    expect(sessionStorage.getItem('berth.token')).toBe(token);
  });
});


const CHALLENGE = 'challenge.jwt.value';

/** fetch answering POST /api/login with a challenge, and POST /api/login/2fa with ``second``
 * in turn; the bodies sent are recorded. */
function twoStepApi(second: Response[]) {
  const sent: { url: string; body: unknown }[] = [];
  const fetch = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = String(input);
    sent.push({ url, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    if (url === '/api/login') {
      return jsonResponse(200, { message: 'Enter a code', two_factor_required: true, challenge: CHALLENGE, expires_in: 300 });
    }
    if (url === '/api/login/2fa') return second.shift() ?? jsonResponse(500, { error: 'unexpected' });
    return jsonResponse(404, { error: 'Not found' });
  });
  return { fetch, sent };
}

async function passwordStep() {
  renderWithApp(<Login />, { route: '/login' });
  fireEvent.change(screen.getByLabelText(/Username/), { target: { value: 'tina' } });
  fireEvent.change(screen.getByLabelText(/Password/), { target: { value: 'tina password 1' } });
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
  return screen.findByTestId('code-form');
}

describe('the sign-in with two-factor sign-in on', () => {
  it('asks for a code, refuses a malformed one unsent, shows a wrong one refused, signs in with a right one', async () => {
    await i18n.changeLanguage('en');
    const token = fakeToken({ sub: '7', role: 'user', username: 'tina', exp: Date.now() / 1000 + 60 });
    const { sent } = twoStepApi([
      jsonResponse(401, { error: 'Invalid two-factor code' }),
      jsonResponse(200, { message: 'Login successful', token, expires_in: 60 }),
    ]);
    await passwordStep();
    expect(currentSession()).toBeNull(); // the password alone signs nobody in
    const input = screen.getByLabelText(/Authentication code/) as HTMLInputElement;
    expect(input.getAttribute('autocomplete')).toBe('one-time-code');
    expect(input.getAttribute('inputmode')).toBe('numeric');
    expect(screen.getByText(/or one of your recovery codes/)).toBeTruthy();

    fireEvent.change(input, { target: { value: '12345' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByText('Six digits, or a recovery code (16 letters and digits)')).toBeTruthy();
    expect(sent.filter((s) => s.url === '/api/login/2fa')).toHaveLength(0);

    fireEvent.change(input, { target: { value: '000 000' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByText('Invalid two-factor code')).toBeTruthy();
    expect(currentSession()).toBeNull();
    expect(screen.getByTestId('code-form')).toBeTruthy(); // still the code step

    fireEvent.change(screen.getByLabelText(/Authentication code/), { target: { value: '123456' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await vi.waitFor(() => expect(currentSession()?.username).toBe('tina'));
    expect(sent.filter((s) => s.url === '/api/login/2fa').map((s) => s.body)).toEqual([
      { challenge: CHALLENGE, code: '000000' }, { challenge: CHALLENGE, code: '123456' }]);
  });

  it('takes a recovery code in the same input, with a full keyboard', async () => {
    await i18n.changeLanguage('en');
    const token = fakeToken({ sub: '7', role: 'user', username: 'tina', exp: Date.now() / 1000 + 60 });
    const { sent } = twoStepApi([jsonResponse(200, { message: 'Login successful', token, expires_in: 60 })]);
    await passwordStep();
    fireEvent.click(screen.getByLabelText('I am typing a recovery code'));
    const input = screen.getByLabelText(/Recovery code/) as HTMLInputElement;
    expect(input.getAttribute('inputmode')).toBe('text');
    fireEvent.change(input, { target: { value: 'ABCD-efgh-2345-7777' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await vi.waitFor(() => expect(currentSession()).not.toBeNull());
    expect(sent[sent.length - 1]?.body).toEqual({ challenge: CHALLENGE, code: 'abcdefgh23457777' });
  });

  it('goes back to the password when the challenge has expired', async () => {
    await i18n.changeLanguage('en');
    twoStepApi([jsonResponse(401, { error: 'Token has expired' })]);
    await passwordStep();
    fireEvent.change(screen.getByLabelText(/Authentication code/), { target: { value: '123456' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    const ended = await screen.findByTestId('challenge-ended');
    expect(ended.textContent).toContain('This sign-in expired');
    expect(ended.textContent).toContain('Token has expired');
    expect(screen.getByTestId('login-form')).toBeTruthy();
    expect(currentSession()).toBeNull();
  });

  it("shows a 429's message with its wait", async () => {
    await i18n.changeLanguage('en');
    twoStepApi([jsonResponse(429, {
      error: 'Too many failed codes; try again later', details: [{ field: 'retry_after', message: '42' }] })]);
    await passwordStep();
    fireEvent.change(screen.getByLabelText(/Authentication code/), { target: { value: '123456' } });
    fireEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByText('Too many failed codes; try again later Try again in 42 seconds.')).toBeTruthy();
    expect(screen.getByTestId('code-form')).toBeTruthy();
  });

  it('signs an admin who must enrol in with the limited token (the console then shows only enrolment)', async () => {
    await i18n.changeLanguage('en');
    const token = fakeToken({ sub: '1', role: 'admin', username: 'root', exp: Date.now() / 1000 + 60, enrol_only: true });
    vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(jsonResponse(200, {
      message: 'Two-factor sign-in is required', token, expires_in: 60, two_factor_enrolment_required: true }));
    renderWithApp(<Login />, { route: '/login' });
    fireEvent.change(screen.getByLabelText(/Username/), { target: { value: 'root' } });
    fireEvent.change(screen.getByLabelText(/Password/), { target: { value: 'admin password' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await waitFor(() => expect(currentSession()?.enrolOnly).toBe(true));
  });
});
