import { QueryClient, QueryObserver } from '@tanstack/react-query';
import { notifications } from '@mantine/notifications';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { addSample, KEEP_POINTS, resetLiveTraffic, useLiveTraffic } from './traffic';
import { announceAlert, applyEvent, STALE } from './useLiveEvents';
import { renderHook } from '@testing-library/react';

const sample = (at: string, rows: [number, number, number][]) => ({
  sampled_at: at,
  containers: rows.map(([id, i, o]) => ({ container_id: id, container_name: `c${id}`, in: i, out: o })),
  traffic: { in: 0, out: 0 },
});

describe('live traffic series', () => {
  beforeEach(() => resetLiveTraffic());

  it('adds one point per sweep and aligns containers that come and go', () => {
    addSample(sample('2026-11-30T00:00:00Z', [[1, 10, 5]]));
    addSample(sample('2026-11-30T00:00:00Z', [[1, 10, 5]])); // the same sweep again
    addSample(sample('2026-11-30T00:01:00Z', [[2, 1, 1]]));
    const { result } = renderHook(() => useLiveTraffic());
    expect(result.current.times).toEqual([Date.parse('2026-11-30T00:00:00Z') / 1000,
      Date.parse('2026-11-30T00:01:00Z') / 1000]);
    expect(result.current.rates.get(1)).toEqual([15, 0]);
    expect(result.current.rates.get(2)).toEqual([null, 2]);
    expect(result.current.names.get(2)).toBe('c2');
  });

  it('keeps a bounded number of points', () => {
    for (let i = 0; i < KEEP_POINTS + 10; i += 1) {
      addSample(sample(new Date(Date.UTC(2026, 10, 30, 0, i)).toISOString(), [[1, i, 0]]));
    }
    const { result } = renderHook(() => useLiveTraffic());
    expect(result.current.times).toHaveLength(KEEP_POINTS);
    expect(result.current.rates.get(1)).toHaveLength(KEEP_POINTS);
    const rates = result.current.rates.get(1) ?? [];
    expect(rates[rates.length - 1]).toBe(KEEP_POINTS + 9);
  });
});

describe('events refresh the queries they concern', () => {
  it('a container event makes the container list stale, not the alerts', async () => {
    const client = new QueryClient();
    client.setQueryData(['/api/containers', { page: 1 }], { containers: [] });
    client.setQueryData(['/api/alerts', {}], { alerts: [] });
    applyEvent(client, 'container_stopped');
    expect(client.getQueryState(['/api/containers', { page: 1 }])?.isInvalidated).toBe(true);
    expect(client.getQueryState(['/api/alerts', {}])?.isInvalidated).toBe(false);
    applyEvent(client, 'alert_raised');
    expect(client.getQueryState(['/api/alerts', {}])?.isInvalidated).toBe(true);
  });

  it('every event the gateway forwards has an entry', () => {
    // gateway/live.py FORWARDED, as the stream's OpenAPI description lists them
    expect(Object.keys(STALE).sort()).toEqual([
      'alert_raised', 'alert_resolved', 'container_created', 'container_died', 'container_moved',
      'container_recovered', 'container_removed', 'container_started', 'container_stopped',
      'rental_expired', 'rental_renewed', 'rental_resumed', 'rental_started', 'rental_suspended',
      'server_came_back', 'server_removed', 'server_updated', 'server_went_down',
      'traffic_quota_cleared', 'traffic_quota_exceeded']);
  });
});

describe('an event during a fetch', () => {
  it('lets the fetch finish, then fetches again (nothing is aborted)', async () => {
    const client = new QueryClient();
    const signals: AbortSignal[] = [];
    let calls = 0;
    const observer = new QueryObserver(client, {
      queryKey: ['/api/containers', { limit: 20 }],
      queryFn: ({ signal }) => {
        signals.push(signal);
        calls += 1;
        return new Promise((resolve) => setTimeout(() => resolve(calls), 20));
      },
    });
    const unsubscribe = observer.subscribe(() => undefined); // on screen: fetches at once
    expect(calls).toBe(1);
    applyEvent(client, 'container_stopped');
    await new Promise((resolve) => setTimeout(resolve, 100));
    unsubscribe();
    expect(signals.some((signal) => signal.aborted)).toBe(false);
    expect(calls).toBe(2);
  });
});

describe('several events during one fetch', () => {
  it('end in one more fetch, none aborted', async () => {
    const client = new QueryClient();
    const signals: AbortSignal[] = [];
    const observer = new QueryObserver(client, {
      queryKey: ['/api/containers', { limit: 20 }],
      queryFn: ({ signal }) => {
        signals.push(signal);
        return new Promise((resolve) => setTimeout(() => resolve(signals.length), 20));
      },
    });
    const unsubscribe = observer.subscribe(() => undefined);
    applyEvent(client, 'container_stopped');
    applyEvent(client, 'container_started');
    await new Promise((resolve) => setTimeout(resolve, 100));
    unsubscribe();
    expect(signals.filter((signal) => signal.aborted)).toHaveLength(0);
    expect(signals).toHaveLength(2);
  });
});

describe('an operator hears of alerts on any page', () => {
  it('shows raised and resolved alerts with their message, nothing for other events', () => {
    const shown = vi.spyOn(notifications, 'show').mockImplementation(() => 'id');
    announceAlert('alert_raised', JSON.stringify({ alert_id: 1, message: 'Server edge-1 is unreachable' }));
    announceAlert('alert_resolved', JSON.stringify({ alert_id: 1, message: 'Server edge-1 is back' }));
    announceAlert('container_died', JSON.stringify({ message: 'not an alert' }));
    announceAlert('alert_raised', 'not json');
    announceAlert('alert_raised', JSON.stringify({ alert_id: 2 }));
    expect(shown.mock.calls.map(([n]) => [n.color, n.message])).toEqual([
      ['red', 'Alert: Server edge-1 is unreachable'], ['green', 'Resolved: Server edge-1 is back']]);
    shown.mockRestore();
  });
});
