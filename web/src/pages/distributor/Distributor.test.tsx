import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../../auth/AuthContext';
import { signIn, signOut } from '../../auth/token';
import i18n from '../../i18n';
import { fakeToken, jsonResponse, renderWithApp } from '../../test/render';
import Distributor, { generatedCsv } from './Distributor';
import { addDays, isDate, todayUtc } from './generate';

const ALLOTMENTS = {
  distributor_id: 7,
  allotments: [{ plan_id: 3, plan_name: 'small', unit: 'serials', serials_left: 5, days_left: null, updated_at: null }],
};
const EMPTY_SALES = { sales: [], total: 0, summary: { issued: 0, redeemed: 0, customers: 0, active_rentals: 0 } };

/** The API as the page sees it: GETs answered from fixtures, POSTs from ``generate``. */
function api(generate: (call: number, body: unknown) => Response) {
  let posts = 0;
  return vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = String(input);
    if (init?.method === 'POST' && url.startsWith('/api/serial/generate')) {
      posts += 1;
      return generate(posts, JSON.parse(String(init.body)));
    }
    if (url.startsWith('/api/distributors/7/allotments')) return jsonResponse(200, ALLOTMENTS);
    if (url.startsWith('/api/distributor/sales')) return jsonResponse(200, EMPTY_SALES);
    if (url.startsWith('/api/serials')) return jsonResponse(200, { serials: [], total: 0 });
    return jsonResponse(404, { error: 'Not found' });
  });
}

function generateCalls(fetch: ReturnType<typeof api>) {
  return fetch.mock.calls.filter(([url, init]) => String(url).startsWith('/api/serial/generate') && init?.method === 'POST');
}

async function choosePlan() {
  fireEvent.click(screen.getByRole('textbox', { name: /^Plan/ }));
  fireEvent.click(await screen.findByRole('option', { name: 'small — 5 serials left', hidden: true }));
}

beforeEach(async () => {
  await i18n.changeLanguage('en');
  signIn(fakeToken({ sub: '7', role: 'distributor', username: 'dora', exp: Date.now() / 1000 + 600 }));
});

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('generating serials', () => {
  it('refuses a form without a plan, a count or a future date, sending nothing', async () => {
    const fetch = api(() => jsonResponse(500, {}));
    renderWithApp(<AuthProvider><Distributor /></AuthProvider>, { route: '/distributor' });
    await screen.findByText('5 serials left');
    fireEvent.change(screen.getByLabelText(/Rental end date/), { target: { value: todayUtc() } });
    fireEvent.change(screen.getByLabelText(/How many/), { target: { value: '' } });
    fireEvent.click(screen.getByRole('button', { name: 'Generate' }));
    expect(await screen.findByText('A date after today')).toBeTruthy();
    expect(screen.getAllByText('Choose a plan').length).toBeGreaterThan(0);
    expect(screen.getByText('A whole number from 1 to 100')).toBeTruthy();
    expect(generateCalls(fetch)).toHaveLength(0);
  });

  it('makes one call per serial, and on a refusal keeps what was made and shows why', async () => {
    const fetch = api((call, body) => (call <= 2
      ? jsonResponse(200, { message: 'ok', serial_code: `CODE-${call}`, serial_id: call, plan_id: (body as { plan_id: number }).plan_id })
      : jsonResponse(409, { error: 'Your allotment of plan small has no serials left' })));
    renderWithApp(<AuthProvider><Distributor /></AuthProvider>, { route: '/distributor' });
    await screen.findByText('5 serials left');
    await choosePlan();
    fireEvent.change(screen.getByLabelText(/How many/), { target: { value: '3' } });
    fireEvent.click(screen.getByRole('button', { name: 'Generate' }));
    expect(await screen.findByText('Your allotment of plan small has no serials left')).toBeTruthy();
    const made = within(screen.getByTestId('generated'));
    expect(made.getByText('2 serials generated')).toBeTruthy();
    expect(made.getAllByTestId('generated-code').map((e) => e.textContent)).toEqual(['CODE-1', 'CODE-2']);
    const calls = generateCalls(fetch);
    expect(calls).toHaveLength(3);
    expect(JSON.parse(String(calls[0][1]?.body))).toEqual({ type: 'rental', expiry_date: addDays(todayUtc(), 30), plan_id: 3 });
  });
});

describe('helpers', () => {
  it('writes the generated codes as CSV', () => {
    expect(generatedCsv([{ message: 'ok', serial_code: 'AB-1', serial_id: 9, plan_id: 3 }]))
      .toBe('serial_id,serial_code,plan_id,expiry_date\r\n9,AB-1,3,\r\n');
  });

  it('knows a real date from a malformed one', () => {
    expect(isDate('2026-02-28')).toBe(true);
    expect(isDate('2026-02-30')).toBe(false);
    expect(isDate('2026-2-3')).toBe(false);
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
  });
});

describe('the distributor page', () => {
  it('is complete in Chinese', async () => {
    api(() => jsonResponse(500, {}));
    await i18n.changeLanguage('zh');
    renderWithApp(<AuthProvider><Distributor /></AuthProvider>, { route: '/distributor' });
    expect(await screen.findByText('剩余 5 个序列号')).toBeTruthy();
    await waitFor(() => expect(screen.getByText('您的序列号还没有被兑换。')).toBeTruthy());
  });
});
