import { fireEvent, screen, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../../auth/AuthContext';
import { signIn, signOut } from '../../auth/token';
import i18n from '../../i18n';
import { fakeToken, jsonResponse, renderWithApp } from '../../test/render';
import { ApiKeysCard, CreateKeyForm } from './ApiKeysCard';

const KEY = 'berth_5_' + 'x'.repeat(43);
const row = {
  key_id: 5, name: 'shop bot', scopes: ['read'], prefix: 'berth_5_', status: 'active',
  created_at: '2026-11-01T00:00:00Z', expires_at: '2027-01-30T00:00:00Z', last_used_at: null, revoked_at: null,
};

function as(role: string) {
  signIn(fakeToken({ sub: '3', role, username: 'kim', exp: Date.now() / 1000 + 600 }));
}

function api(create: () => Response) {
  const keys: (typeof row)[] = [];
  return vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = String(input);
    if (url === '/api/keys' && init?.method === 'POST') {
      const reply = create();
      if (reply.ok) keys.push(row);
      return reply;
    }
    if (url.startsWith('/api/keys')) return jsonResponse(200, { user_id: 3, keys, total: keys.length, limit: 10, offset: 0 });
    return jsonResponse(404, { error: 'Not found' });
  });
}

const posts = (fetch: ReturnType<typeof api>) => fetch.mock.calls.filter(([, init]) => init?.method === 'POST');

beforeEach(async () => {
  await i18n.changeLanguage('en');
});

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('the API key form', () => {
  it('offers a customer read, containers and billing; an operator also administration', () => {
    as('user');
    const customer = renderWithApp(<AuthProvider><CreateKeyForm onCreated={() => {}} /></AuthProvider>);
    expect(screen.getAllByRole('checkbox').map((box) => (box as HTMLInputElement).value)).toEqual(['read', 'containers', 'billing']);
    expect(screen.queryByLabelText(/Administration/)).toBeNull();
    customer.unmount();
    signOut();
    as('admin');
    renderWithApp(<AuthProvider><CreateKeyForm onCreated={() => {}} /></AuthProvider>);
    expect(screen.getAllByRole('checkbox').map((box) => (box as HTMLInputElement).value))
      .toEqual(['read', 'containers', 'billing', 'admin']);
  });

  it('refuses a key without a name or a scope, or with a bad expiry, before sending', async () => {
    as('distributor');
    const fetch = api(() => jsonResponse(500, {}));
    renderWithApp(<AuthProvider><CreateKeyForm onCreated={() => {}} /></AuthProvider>);
    fireEvent.click(screen.getByLabelText(/^Read/)); // unticks the default
    fireEvent.change(screen.getByLabelText(/Expires after/), { target: { value: '0' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create the key' }));
    expect(await screen.findByText('Required')).toBeTruthy();
    expect(screen.getByText('Choose at least one scope')).toBeTruthy();
    expect(screen.getByText('A whole number of days from 1 to 36500')).toBeTruthy();
    expect(posts(fetch)).toHaveLength(0);
  });

  it("shows the API's ceiling on the expiry when it refuses one", async () => {
    as('user');
    api(() => jsonResponse(400, { error: 'Invalid API key data', details: [{ field: 'expires_in_days', message: 'must be at most 365' }] }));
    renderWithApp(<AuthProvider><CreateKeyForm onCreated={() => {}} /></AuthProvider>);
    fireEvent.change(screen.getByLabelText(/Name/), { target: { value: 'bot' } });
    fireEvent.change(screen.getByLabelText(/Expires after/), { target: { value: '400' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create the key' }));
    expect(await screen.findByText('must be at most 365')).toBeTruthy();
    expect(screen.getByText('Invalid API key data')).toBeTruthy();
  });

  it('sends the chosen scopes, shows the key once, then only the list', async () => {
    as('user');
    const fetch = api(() => jsonResponse(200, { ...row, scopes: ['read', 'billing'], message: 'created', key: KEY }));
    renderWithApp(<AuthProvider><ApiKeysCard /></AuthProvider>);
    expect(await screen.findByTestId('no-keys')).toBeTruthy();
    expect(screen.getByText('Authorization: Bearer <key>')).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/Name/), { target: { value: '  shop bot ' } });
    fireEvent.click(screen.getByLabelText(/^Billing/));
    fireEvent.click(screen.getByRole('button', { name: 'Create the key' }));
    expect((await screen.findByTestId('new-key-value')).textContent).toBe(KEY);
    expect(JSON.parse(String(posts(fetch)[0][1]?.body))).toEqual({ name: 'shop bot', scopes: ['read', 'billing'], expires_in_days: 90 });
    const listed = await screen.findByTestId('key-shop bot');
    expect(within(listed).getByTestId('key-status').textContent).toBe('active');
    fireEvent.click(screen.getByRole('button', { name: 'I have copied it' }));
    expect(screen.queryByTestId('new-key-value')).toBeNull();
    expect(document.body.textContent).not.toContain(KEY); // gone for good
  });
});
