import { act, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../auth/AuthContext';
import { signIn, signOut } from '../auth/token';
import { fakeToken, jsonResponse, renderWithApp } from '../test/render';
import { useLiveStatus } from './status';
import { useLiveEvents } from './useLiveEvents';

/** EventSource as the browser has it, driven by the test. */
class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static made: FakeEventSource[] = [];
  readyState = FakeEventSource.CONNECTING;
  onerror: (() => void) | null = null;
  listeners = new Map<string, ((event: MessageEvent) => void)[]>();
  closed = false;

  constructor(public url: string) {
    FakeEventSource.made.push(this);
  }

  addEventListener(kind: string, listener: (event: MessageEvent) => void) {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), listener]);
  }

  emit(kind: string, data: unknown = {}) {
    this.readyState = FakeEventSource.OPEN;
    for (const listener of this.listeners.get(kind) ?? []) {
      listener(new MessageEvent(kind, { data: JSON.stringify(data) }));
    }
  }

  fail(readyState: number) {
    this.readyState = readyState;
    this.onerror?.();
  }

  close() {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }
}

function Probe() {
  useLiveEvents();
  return <p data-testid="status">{useLiveStatus()}</p>;
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  FakeEventSource.made = [];
  signOut();
});

describe('the live stream in the page', () => {
  it('opens with a ticket, and asks for a fresh one when the gateway refuses the old', async () => {
    vi.stubGlobal('EventSource', FakeEventSource);
    let tickets = 0;
    const fetch = vi.spyOn(globalThis, 'fetch').mockImplementation(async () => {
      tickets += 1;
      return jsonResponse(200, { ticket: `t${tickets}`, expires_in: 30, url: `/api/stream?ticket=t${tickets}` });
    });
    signIn(fakeToken({ sub: '2', role: 'user', username: 'alice', exp: Date.now() / 1000 + 600 }));
    const view = renderWithApp(<AuthProvider><Probe /></AuthProvider>);
    await waitFor(() => expect(FakeEventSource.made).toHaveLength(1));
    const first = FakeEventSource.made[0];
    expect(first.url).toBe('/api/stream?ticket=t1');
    expect(fetch.mock.calls[0][1]?.method).toBe('POST');
    act(() => first.emit('hello', { user_id: 2, role: 'user' }));
    expect(view.getByTestId('status').textContent).toBe('live');

    // the connection drops: the browser retries by itself with the same ticket
    act(() => first.fail(FakeEventSource.CONNECTING));
    expect(view.getByTestId('status').textContent).toBe('reconnecting');
    expect(FakeEventSource.made).toHaveLength(1);

    // the gateway refused it (an expired ticket): a fresh ticket, a new stream
    act(() => first.fail(FakeEventSource.CLOSED));
    await waitFor(() => expect(FakeEventSource.made).toHaveLength(2), { timeout: 3000 });
    expect(first.closed).toBe(true);
    expect(FakeEventSource.made[1].url).toBe('/api/stream?ticket=t2');
    act(() => FakeEventSource.made[1].emit('hello', { user_id: 2, role: 'user' }));
    expect(view.getByTestId('status').textContent).toBe('live');
    view.unmount();
    expect(FakeEventSource.made[1].closed).toBe(true);
  });
});
