"""The one place the gateway decides whether a bearer credential still works.

A signed, unexpired access token names its user (``sub``), its session (``sid``) and the
token version it was issued under (``ver``). It is refused (401 "Session ended; sign in
again") when the users service says the account is gone or disabled, its version has moved
on (a role change, disabling, a password change or reset), or its session was revoked
(logout). The users service's answer for a user (``users.token_state``) is kept per worker
for BERTH_TOKEN_CHECK_SECONDS (2 s by default), so a revocation takes effect on every worker
of every gateway replica within that plus one RPC, and an authenticated request costs a dict
lookup, not an RPC: one RPC per signed-in user per worker every 2 s at most.

When the users service cannot be asked and the state kept is too old, the request is a 503:
the gateway does not let a token through that it cannot check (fail closed).

An API key (``berth_<id>_<secret>``, issue 16 item 4) is checked the same way by
``ApiKeyChecker``: the users service's answer for the key (``users.api_key_state``: revoked or
not, its owner's current role and state, its scopes, the digest of its secret) is kept per
worker for BERTH_TOKEN_CHECK_SECONDS, so revoking a key, or disabling or changing the role of
its owner, takes effect within the same bound; the route's scope is checked by
``gateway.api.authenticate``. ``TokenChecker.claims`` is the only caller of ``tokens.decode``
for the access tokens requests carry (``gateway.audit`` reads the one a login answers with).

A token with ``enrol_only`` (an admin signed in without two-factor sign-in while
BERTH_REQUIRE_2FA_FOR_ADMINS is on) reaches only ``ENROL_ROUTES``; elsewhere it is a 403
saying where to enrol. Confirming the enrolment gives the session a full token.

"""
from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from typing import Callable

from berth import api_keys, tokens
from berth.actor import Actor
from berth.errors import Forbidden, ServiceUnavailable, Unauthorized
from berth.tokens import SESSION_ENDED

ENROL_FIRST = "two-factor sign-in is required for admins; enrol at /api/2fa/enrol"
# what an ``enrol_only`` token reaches (route templates)
ENROL_ROUTES = frozenset({"/api/2fa", "/api/2fa/enrol", "/api/2fa/confirm", "/api/logout"})
UNCHECKED = "The users service did not answer; this session cannot be checked now"
MAX_ENTRIES = 50_000  # users whose state a worker keeps at once (then the oldest are dropped)
MAX_VERIFIED = 4096  # access tokens a worker remembers verifying (then the oldest are dropped)


@dataclass(frozen=True)
class TokenState:
    """What the users service said about one user, and when this worker asked."""
    version: int
    disabled: bool
    revoked_sessions: frozenset
    fetched_at: float

    @classmethod
    def of(cls, reply: dict, fetched_at: float) -> TokenState:
        return cls(int(reply["version"]), bool(reply["disabled"]) or not reply.get("exists", True),
                   frozenset(reply.get("revoked_sessions") or ()), fetched_at)

    def allows(self, claims: dict) -> bool:
        return (not self.disabled and claims["ver"] == self.version
                and claims["sid"] not in self.revoked_sessions)


class StateCache:
    """Per process (gunicorn worker): what the users service said about a key (a user id, an
    API key id), kept for ``max_age`` seconds. ``fetch(key, *args)`` asks; ``parse(reply,
    fetched_at)`` makes the state kept; ``clock`` is monotonic seconds. Threads asking for the
    same key while it is being fetched wait for that one answer instead of asking again; when
    the answer cannot be had and the state kept is too old, a 503 (fail closed)."""

    def __init__(self, fetch: Callable, parse: Callable, max_age: float,
                 clock: Callable[[], float] = time.monotonic):
        self.fetch, self.parse, self.max_age, self.clock = fetch, parse, max_age, clock
        self._states: dict = {}
        self._locks: dict = {}
        self._failures: dict = {}  # key -> when its last fetch failed
        self._guard = threading.Lock()

    def get(self, key, *args):
        state = self._states.get(key)
        if state is not None and self.clock() - state.fetched_at < self.max_age:
            return state
        arrived = self.clock()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per key at a time; the others take its answer
            state = self._states.get(key)
            if state is not None and self.clock() - state.fetched_at < self.max_age:
                return state
            failed_at = self._failures.get(key)
            if failed_at is not None and failed_at >= arrived:
                # the fetch this request waited for failed: the same answer at once, not
                # another RPC timeout in a queue of them
                raise ServiceUnavailable(UNCHECKED)
            started = self.clock()
            try:
                reply = self.fetch(key, *args)  # a 503 if users cannot answer
            except Exception:
                self._failures[key] = self.clock()
                raise
            self._failures.pop(key, None)
            state = self.parse(reply, started)
            if len(self._states) >= MAX_ENTRIES:
                self._evict()
            self._states[key] = state
            return state

    def forget(self, key) -> None:
        self._states.pop(key, None)

    def _evict(self) -> None:
        with self._guard:
            now = self.clock()
            for key, state in list(self._states.items()):
                if now - state.fetched_at >= self.max_age:
                    self._states.pop(key, None)
                    self._locks.pop(key, None)
                    self._failures.pop(key, None)
            while len(self._states) >= MAX_ENTRIES:  # all fresh: drop the oldest
                oldest = min(self._states, key=lambda k: self._states[k].fetched_at)
                self._states.pop(oldest, None)


class TokenChecker:
    """Per process (gunicorn worker): ``check(token)`` -> ``Actor`` or Unauthorized.

    ``fetch(user_id)`` asks the users service for ``token_state``; ``max_age`` is how long an
    answer is trusted; ``clock`` is monotonic seconds. Threads asking for the same user while
    its state is being fetched wait for that one answer instead of asking again.
    """

    def __init__(self, secret: str, fetch: Callable[[int], dict], max_age: float,
                 clock: Callable[[], float] = time.monotonic):
        self.secret = secret
        self._cache = StateCache(fetch, TokenState.of, max_age, clock)
        self._verified: dict[str, dict] = {}  # token -> its claims, once its signature held
        self._verified_lock = threading.Lock()

    def claims(self, token: str) -> dict:
        """The claims of a valid access token (``tokens.decode``'s checks). A token's text
        never changes, so a worker verifies each token once: the signature, the claims'
        shape and type (PyJWT's checks took about a quarter of the gateway's own work per
        request). Expiry is checked on every use; whether its session still holds is
        ``check``'s question, asked every time."""
        claims = self._verified.get(token)
        if claims is not None and time.time() < claims["exp"] + tokens.LEEWAY_SECONDS:
            return claims
        claims = tokens.decode(self.secret, token, tokens.ACCESS)  # expired: Unauthorized
        with self._verified_lock:
            self._verified[token] = claims
            while len(self._verified) > MAX_VERIFIED:
                self._verified.pop(next(iter(self._verified)))
        return claims

    def check(self, token: str, route: str | None = None) -> tuple[Actor, str]:
        """The caller a bearer token names and its session id; Unauthorized if the token
        is not a valid access token or its session has ended; Forbidden if it may only
        enrol in two-factor sign-in and ``route`` (a route template) is not for that."""
        claims = self.claims(token)
        user_id = int(claims["sub"])
        state = self.state(user_id)
        if claims["ver"] > state.version:
            # issued after this worker last asked (a fresh token from a password change or
            # a two-factor change on another worker): what it keeps is behind, ask again
            self.forget(user_id)
            state = self.state(user_id)
        if not state.allows(claims):
            raise Unauthorized(SESSION_ENDED)
        if claims.get("enrol_only") and route not in ENROL_ROUTES:
            raise Forbidden(ENROL_FIRST)
        return Actor(user_id, claims.get("role", ""), claims.get("username", "")), claims["sid"]

    def state(self, user_id: int) -> TokenState:
        return self._cache.get(user_id)

    def forget(self, user_id: int) -> None:
        """Drop what this worker knows of ``user_id`` (after a change made through it, so
        this worker sees it at once; the others within ``max_age``)."""
        self._cache.forget(user_id)


# --- API keys (issue 16, item 4; services.users.api_keys) -----------------------------------

INVALID_KEY = "Invalid, expired or revoked API key"


@dataclass(frozen=True)
class KeyState:
    """What the users service said about one API key, and when this worker asked."""
    usable: bool  # exists, not revoked, its owner enabled with the role and version it had
    user_id: int
    username: str
    role: str
    scopes: frozenset
    secret_hash: str
    expires_at: float  # epoch seconds (the wall clock: keys last days)
    fetched_at: float

    @classmethod
    def of(cls, reply: dict, fetched_at: float) -> KeyState:
        if not reply.get("exists") or not reply.get("usable"):
            return cls(False, 0, "", "", frozenset(), "", 0.0, fetched_at)
        return cls(True, int(reply["user_id"]), str(reply["username"]), str(reply["role"]),
                   frozenset(reply["scopes"]) & api_keys.allowed(str(reply["role"])),
                   str(reply["secret_hash"]), float(reply["expires_at"]), fetched_at)


class ApiKeyChecker:
    """Per process: ``check(key)`` -> (``Actor``, scopes, id) or Unauthorized, for a bearer
    credential in the ``berth_<id>_<secret>`` format. ``fetch(key_id, presented_hash)`` asks
    the users service for ``api_key_state`` (which records the key's last use when the hash
    is its secret's), kept per key for ``max_age`` seconds like a user's token state: a
    revocation, or its owner's disabling or role change, takes effect within that plus one
    RPC. The secret's SHA-256 is compared with the stored one in constant time."""

    def __init__(self, fetch: Callable[[int, str], dict], max_age: float,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        self.wall_clock = wall_clock
        self._cache = StateCache(fetch, KeyState.of, max_age, clock)

    def check(self, key: str) -> tuple[Actor, frozenset, int]:
        """The key's owner as they are now, the scopes it holds, and its id."""
        parsed = api_keys.parse(key)
        if parsed is None:
            raise Unauthorized(INVALID_KEY)
        key_id, secret = parsed
        presented = api_keys.digest(secret)
        state = self._cache.get(key_id, presented)
        if not (state.usable and hmac.compare_digest(presented, state.secret_hash)
                and self.wall_clock() < state.expires_at):
            raise Unauthorized(INVALID_KEY)
        return Actor(state.user_id, state.role, state.username), state.scopes, key_id

    def forget(self, key_id: int) -> None:
        """This worker asks again about ``key_id`` at its next use (after a revocation made
        through it)."""
        self._cache.forget(key_id)
