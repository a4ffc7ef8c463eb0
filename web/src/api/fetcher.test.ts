import { afterEach, describe, expect, it, vi } from 'vitest';
import { containersContainerLogs, usersLogin } from './generated/berth';
import { ApiError } from './fetcher';
import { currentSession, signIn, signOut } from '../auth/token';
import { fakeToken, jsonResponse } from '../test/render';

const token = fakeToken({ sub: '7', role: 'user', username: 'alice', exp: Date.now() / 1000 + 3600 });

afterEach(() => {
  vi.restoreAllMocks();
  signOut();
});

describe('the generated client through berthFetch', () => {
  it('sends the path, query, JSON body and bearer token the operation needs', async () => {
    signIn(token);
    const fetch = vi.spyOn(globalThis, 'fetch').mockResolvedValue(
      jsonResponse(200, { container_id: 1, container_name: 'web', tail: 5, lines: ['a'] }));
    const logs = await containersContainerLogs('web', { tail: 5 });
    expect(logs.lines).toEqual(['a']);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('/api/containers/web/logs?tail=5');
    expect(init?.method).toBe('GET');
    expect((init?.headers as Record<string, string>).Authorization).toBe(`Bearer ${token}`);

    fetch.mockResolvedValue(jsonResponse(200, { message: 'ok', token, expires_in: 3600 }));
    await usersLogin({ username: 'alice', password: 'pw' });
    const [, post] = fetch.mock.calls[1];
    expect(post?.method).toBe('POST');
    expect(post?.body).toBe('{"username":"alice","password":"pw"}');
    expect((post?.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it("turns a refusal into an ApiError with the API's sentence and fields", async () => {
    vi.spyOn(globalThis, 'fetch').mockResolvedValue(jsonResponse(400, {
      error: 'Invalid serial data', details: [{ field: 'serial_code', message: 'too long' }],
    }));
    const error = await usersLogin({ username: 'a', password: 'b' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toBe('Invalid serial data');
    expect((error as ApiError).details).toEqual([{ field: 'serial_code', message: 'too long' }]);
    expect((error as ApiError).unavailable).toBe(false);
  });

  it('calls a 503 or an unreachable gateway unavailable', async () => {
    vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(jsonResponse(503, { error: 'Service unavailable' }))
      .mockRejectedValueOnce(new TypeError('Failed to fetch'));
    for (const status of [503, 0]) {
      const error = (await usersLogin({ username: 'a', password: 'b' }).catch((e: unknown) => e)) as ApiError;
      expect(error.status).toBe(status);
      expect(error.unavailable).toBe(true);
    }
  });

  it('signs out when the gateway refuses the token', async () => {
    signIn(token);
    expect(currentSession()?.username).toBe('alice');
    vi.spyOn(globalThis, 'fetch').mockResolvedValue(jsonResponse(401, { error: 'Token has expired' }));
    await containersContainerLogs('web').catch(() => undefined);
    expect(currentSession()).toBeNull();
    expect(sessionStorage.getItem('berth.token')).toBeNull();
  });
});
