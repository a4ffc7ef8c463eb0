import { screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useBillingRentalInfo } from '../api/generated/berth';
import i18n from '../i18n';
import { jsonResponse, renderWithApp } from '../test/render';
import { QueryState } from './QueryState';

function Probe() {
  const query = useBillingRentalInfo();
  return <QueryState query={query}>{(info) => <p>status {info.rental_status}</p>}</QueryState>;
}

afterEach(() => vi.restoreAllMocks());

describe('QueryState', () => {
  it('shows "unavailable, retrying" on a 503 and the data once the service answers', async () => {
    await i18n.changeLanguage('en');
    const fetch = vi.spyOn(globalThis, 'fetch')
      .mockResolvedValueOnce(jsonResponse(503, { error: 'Service unavailable' }))
      .mockResolvedValueOnce(jsonResponse(503, { error: 'Service unavailable' }))
      .mockResolvedValue(jsonResponse(200, { user_id: 1, rental_status: 'none', rental_expiry: null, rental_id: null }));
    renderWithApp(<Probe />);
    expect(await screen.findByText('The service is unavailable right now; retrying…')).toBeTruthy();
    expect(await screen.findByText('status none')).toBeTruthy();
    expect(fetch).toHaveBeenCalledTimes(3);
  });

  it("shows the API's sentence for a refusal, without retrying", async () => {
    await i18n.changeLanguage('zh');
    const fetch = vi.spyOn(globalThis, 'fetch').mockResolvedValue(jsonResponse(403, { error: 'Not allowed' }));
    renderWithApp(<Probe />);
    expect(await screen.findByText('Not allowed')).toBeTruthy();
    expect(screen.getByText('请求被拒绝')).toBeTruthy();
    await waitFor(() => expect(fetch).toHaveBeenCalledTimes(1));
  });
});
