import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../../auth/AuthContext';
import { signIn, signOut } from '../../auth/token';
import i18n from '../../i18n';
import { fakeToken, jsonResponse, renderWithApp } from '../../test/render';
import Users from './Users';

const victim = {
  user_id: 4, username: 'vic', email: 'vic@example.com', role: 'user', traffic_limit: null,
  disabled: false, email_verified: true, created_at: '2026-11-01T00:00:00Z',
};

function api(update: () => Response) {
  let disabled = false;
  return vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = String(input);
    if (init?.method === 'PUT' && url === '/api/users/4') {
      const reply = update();
      if (reply.ok) disabled = true;
      return reply;
    }
    if (url.startsWith('/api/users')) {
      return jsonResponse(200, { users: [{ ...victim, disabled }], total: 1, limit: 25, offset: 0 });
    }
    return jsonResponse(404, { error: 'Not found' });
  });
}

const puts = (fetch: ReturnType<typeof api>) => fetch.mock.calls.filter(([, init]) => init?.method === 'PUT');

beforeEach(async () => {
  await i18n.changeLanguage('en');
  signIn(fakeToken({ sub: '1', role: 'admin', username: 'root', exp: Date.now() / 1000 + 600 }));
});

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('disabling a user', () => {
  it('asks first: Cancel sends nothing, confirming sends disabled: true', async () => {
    const fetch = api(() => jsonResponse(200, { message: 'ok', user: { ...victim, disabled: true } }));
    renderWithApp(<AuthProvider><Users /></AuthProvider>, { route: '/operator/users' });
    const row = await screen.findByTestId('user-vic');
    fireEvent.click(within(row).getByRole('button', { name: 'Disable' }));
    const dialog = await screen.findByRole('dialog');
    expect(within(dialog).getByText('Disable vic?')).toBeTruthy();
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(puts(fetch)).toHaveLength(0);

    fireEvent.click(within(row).getByRole('button', { name: 'Disable' }));
    fireEvent.click(await screen.findByTestId('confirm'));
    await screen.findByTestId('user-disabled');
    expect(puts(fetch)).toHaveLength(1);
    expect(JSON.parse(String(puts(fetch)[0][1]?.body))).toEqual({ disabled: true });
  });

  it("shows the API's refusal in the dialog and leaves it open", async () => {
    api(() => jsonResponse(409, { error: 'The last admin cannot be disabled' }));
    renderWithApp(<AuthProvider><Users /></AuthProvider>, { route: '/operator/users' });
    const row = await screen.findByTestId('user-vic');
    fireEvent.click(within(row).getByRole('button', { name: 'Disable' }));
    fireEvent.click(await screen.findByTestId('confirm'));
    const dialog = await screen.findByRole('dialog');
    expect(await within(dialog).findByText('The last admin cannot be disabled')).toBeTruthy();
    expect(screen.queryByTestId('user-disabled')).toBeNull();
  });

  it('offers no Disable button on one’s own row', async () => {
    signIn(fakeToken({ sub: '4', role: 'admin', username: 'vic', exp: Date.now() / 1000 + 600 }));
    api(() => jsonResponse(500, {}));
    renderWithApp(<AuthProvider><Users /></AuthProvider>, { route: '/operator/users' });
    const row = await screen.findByTestId('user-vic');
    expect(within(row).queryByRole('button', { name: 'Disable' })).toBeNull();
  });
});
