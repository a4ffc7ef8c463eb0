// The bearer token: kept in memory and in sessionStorage (so a reload of the tab keeps the
// session, a new tab or a closed browser does not). Its claims are read, not trusted: the
// gateway checks the signature on every call.

const KEY = 'berth.token';

export type Role = 'user' | 'distributor' | 'admin';

export interface Session {
  token: string;
  userId: number;
  username: string;
  role: Role;
  expiresAt: number; // ms since the epoch
  /** an admin who must enrol in two-factor sign-in first (BERTH_REQUIRE_2FA_FOR_ADMINS): the
   * token reaches only the /api/2fa routes and logout, so the console shows only enrolment */
  enrolOnly: boolean;
}

type Listener = (session: Session | null) => void;

let session: Session | null = null;
const listeners = new Set<Listener>();

function decode(token: string): Session | null {
  try {
    const payload = token.split('.')[1];
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as {
      sub?: unknown; role?: unknown; username?: unknown; exp?: unknown; enrol_only?: unknown;
    };
    const userId = Number(claims.sub);
    const role = claims.role as Role;
    if (!Number.isInteger(userId) || typeof claims.username !== 'string' ||
        !['user', 'distributor', 'admin'].includes(role) || typeof claims.exp !== 'number') {
      return null;
    }
    return { token, userId, username: claims.username, role, expiresAt: claims.exp * 1000,
             enrolOnly: claims.enrol_only === true };
  } catch {
    return null;
  }
}

function publish(next: Session | null) {
  session = next;
  listeners.forEach((listener) => listener(session));
}

export function restore(): Session | null {
  let stored: string | null = null;
  try {
    stored = sessionStorage.getItem(KEY);
  } catch {
    stored = null;
  }
  const restored = stored ? decode(stored) : null;
  session = restored && restored.expiresAt > Date.now() ? restored : null;
  if (!session && stored) sessionStorage.removeItem(KEY);
  return session;
}

export function signIn(token: string): Session | null {
  const next = decode(token);
  if (!next) return null;
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    /* private mode: memory only */
  }
  publish(next);
  return next;
}

export function signOut(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    /* nothing stored */
  }
  publish(null);
}

let expiredHandler: (() => void) | null = null;

/** The gateway refused the token (expired, or the account changed): sign out and say so. */
export function signOutExpired(): void {
  if (!session) return;
  signOut();
  expiredHandler?.();
}

export function onExpired(handler: () => void): void {
  expiredHandler = handler;
}

export function currentSession(): Session | null {
  return session;
}

export function currentToken(): string | null {
  return session?.token ?? null;
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
