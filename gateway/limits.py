"""Rate limits at the gateway, counted in one store that every worker and replica shares.

The store is Redis (``BERTH_RATE_LIMIT_STORAGE``), through the ``limits`` library's moving
window: a request is refused once the address (or account) has used the limit within the
last period, whatever worker or host counted the earlier ones. ``memory://`` counts per
process and is for development and tests only.

Three kinds of limit:

- **the whole API per client address** (``BERTH_RATE_LIMIT_API``): every request counts. A
  worker counts a busy address's requests in the store ahead, in leases (``ApiLease``): one
  store call counts the next few requests, which the worker then lets through on its own while
  that count is in the store's window (the shortest whole-API period). A lease starts at 1
  request (every request asked, as without leases) and doubles, up to 1 % of the limit and at
  most ``API_LEASE_MAX``, each time one is used up within ``API_LEASE_SECONDS`` of being
  counted; one used up more slowly is followed by one of the same size, and an address quiet
  for a whole period starts at 1 again. So an address gets at most a lease per worker past its
  limit in a period (a lease counted at a period's start and used at its end is out of the
  store's window while it is used), and one that stops leaves at most a lease per worker
  counted that never came. A refused address is refused by the worker itself, without the
  store, for the wait the store gave. The store costs one call per lease instead of one per
  request (a quarter of the gateway's CPU per request went to it: the issue 18 note);
- **guarded routes** (``GUARDS``, one line per route): per address, and, when the route's
  body names an account, per account *and* address, with a ceiling per account from all
  addresses. A route either counts every attempt (sign-up, mails) or only its failures
  (login: 401), so that correct logins, however many at once, never use the allowance up;
- **the account ceiling never locks the owner out**: past it, only addresses that have
  already failed (or asked) for that account within the window are refused; an address that
  has not, such as the owner's, still gets through. A success clears that account's count
  for the address it came from.

The client address is the peer's, or, behind reverse proxies listed in
``BERTH_TRUSTED_PROXIES``, the nearest address in ``X-Forwarded-For`` that is not one of
them (``TrustedProxies``). IPv6 clients are counted per /64 (one subscriber's network).

When the store does not answer (down, timed out), limits fail **open**: the request goes on,
a warning is logged (once per outage) and ``berth_rate_limit_store_errors_total`` counts it;
the store is not asked again for ``STORE_RETRY_SECONDS``. Login then still has the users
database's per-account backstop (``BERTH_LOGIN_MAX_FAILURES``).

To limit another route, add one line to ``GUARDS`` (``"METHOD /api/path": Guard(name, ...)``)
and the settings ``rate_limit_<name>`` (per address) and, with an account field,
``rate_limit_<name>_account`` and ``rate_limit_<name>_account_total`` (``berth.settings``).
"""
from __future__ import annotations

import collections
import hashlib
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable

from flask import Flask, current_app, g, request

from berth import tokens
from berth.errors import TooManyRequests
from berth.settings import InsecureConfiguration

log = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 5.0  # after a store failure, limits are not applied for this long
STORE_TIMEOUT = 0.5  # seconds for one store call (connect or answer)
API_LEASE_MAX = 32  # requests of one address one store call may count ahead
API_LEASE_SECONDS = 1.0  # a lease used up this soon after it was counted: the next is twice
MAX_LEASES = 20_000  # addresses a worker keeps leases of (then the least recent is dropped)
MAX_ACCOUNT_LENGTH = 320


@dataclass(frozen=True)
class Guard:
    """How one route is limited. ``name`` picks its settings (``rate_limit_<name>``, and
    ``..._account``, ``..._account_total`` with an ``account`` field); ``account`` is the
    body field naming the account (compared in lower case); ``failures`` are the statuses
    that count (empty: every attempt counts); ``audit_failures`` sends those answers to the
    audit log (with the client address)."""
    name: str
    account: str | None = None
    failures: tuple[int, ...] = ()
    audit_failures: bool = False
    # the account the ``account`` field's value stands for, when it is not the account name
    # itself (the two-factor step's challenge names a user); None: the value is the name
    identify: Callable[[object], str | None] | None = None


def challenge_user(value) -> str | None:
    """The user a login challenge (``POST /api/login/2fa``) was issued to, checked with this
    installation's secret (expired or not), as an account name for the limits: a new
    challenge (the attacker knows the password) is the same account as the last."""
    user_id = tokens.challenge_subject(current_app.config["BERTH_SECRET"], value)
    return None if user_id is None else f"user:{user_id}"


# One line per limited route, by method and path: the paths of routes other work adds (the
# password routes) are fixed by the API, so their lines apply as soon as the routes exist.
# Two-factor codes (settings rate_limit_totp*): the login's second step per address and per
# user (from its challenge), failures only (401); a signed-in caller's wrong codes (400) per
# address. All of them share the ``totp`` counts of an address.
GUARDS: dict[str, Guard] = {
    "POST /api/login/2fa": Guard("totp", "challenge", failures=(401,), audit_failures=True,
                                 identify=challenge_user),
    "POST /api/2fa/confirm": Guard("totp", failures=(400,), audit_failures=True),
    "POST /api/2fa/disable": Guard("totp", failures=(400,), audit_failures=True),
    "POST /api/2fa/recovery_codes": Guard("totp", failures=(400,), audit_failures=True),
    "POST /api/login": Guard("login", "username", failures=(401,), audit_failures=True),
    # a signed-in caller's password, checked again before a credential changes: wrong ones
    # (400) count per address with the logins' (a stolen session guesses no faster)
    "POST /api/password": Guard("login", failures=(400,), audit_failures=True),
    "PUT /api/user/email": Guard("login", failures=(400,), audit_failures=True),
    "POST /api/2fa/enrol": Guard("login", failures=(400,), audit_failures=True),
    "POST /api/add_user": Guard("signup"),
    "POST /api/send_verification_email": Guard("verification_mail", "email"),
    "POST /api/password/forgot": Guard("password_forgot", "email"),
    "POST /api/password/reset": Guard("password_reset"),
}

MESSAGES = {"api": "Too many requests from this address; slow down",
            "login": "Too many failed login attempts; try again later",
            "totp": "Too many failed codes; try again later"}


def parse_limits(text: str, setting: str) -> list:
    """The rate limit items of one setting ("20/15 minutes;100/day"); [] when empty."""
    from limits import parse_many
    if not text or not text.strip():
        return []
    try:
        return parse_many(text)
    except ValueError:
        raise ValueError(f"BERTH_{setting.upper()}: {text!r} is not a rate limit such as "
                         f"'20/15 minutes' or '600/minute'") from None


def limits_from_settings(settings) -> dict[str, list]:
    """Every limit by its setting's name without ``rate_limit_`` (``api``, ``login_account``)."""
    out = {}
    for field in type(settings).model_fields:
        if field.startswith("rate_limit_") and field not in ("rate_limit_storage",
                                                              "rate_limit_prefix"):
            out[field[len("rate_limit_"):]] = parse_limits(getattr(settings, field), field)
    return out


def open_storage(uri: str, prefix: str, env: str):
    from limits.storage import storage_from_string
    scheme = uri.partition("://")[0]
    if scheme == "memory" and env not in ("development", "test"):
        raise InsecureConfiguration(
            "BERTH_RATE_LIMIT_STORAGE=memory:// counts per process, so limits would not hold "
            "across gateway workers and replicas; use redis:// (only BERTH_ENV=development or "
            "test may use memory://)")
    if scheme.startswith("redis") or scheme.startswith("rediss"):
        return storage_from_string(uri, key_prefix=prefix, socket_timeout=STORE_TIMEOUT,
                                   socket_connect_timeout=STORE_TIMEOUT)
    return storage_from_string(uri)


@lru_cache(maxsize=4096)  # parsed once per address, not on every request
def client_key(address: str | None) -> str:
    """What an address is counted as: itself (IPv4, or an IPv4-mapped IPv6 address), or its
    /64 network for IPv6 (one subscriber usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def account_key(value) -> str | None:
    """A fixed-length digest of an account name or e-mail address in lower case (names are
    not kept in the store in clear); None for anything that is not a plausible one."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ACCOUNT_LENGTH:
        return None
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


@dataclass
class ApiLease:
    """One address's whole-API lease in one worker (see the module's docstring)."""
    size: int = 0  # requests the last lease counted in the store
    left: int = 0  # of them, not yet let through
    counted_at: float = 0.0  # monotonic time the store counted them
    until: float = 0.0  # after which the rest are not used (out of the store's window)
    asking: bool = False  # a thread is asking the store for the next lease
    refused_until: float = 0.0  # the store refused: refuse here until then


class Limiter:
    """The limits of one gateway process over a shared store; every call fails open."""

    def __init__(self, storage, limits: dict[str, list], prefix: str = "berth",
                 clock=time.time, metrics=None):
        from limits.strategies import MovingWindowRateLimiter
        self.strategy = MovingWindowRateLimiter(storage)
        self.limits = limits
        self.prefix = prefix
        self.clock = clock
        self.monotonic = time.monotonic  # the whole-API leases' clock (tests set their own)
        self.metrics = metrics
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._leases: collections.OrderedDict[str, ApiLease] = collections.OrderedDict()
        items = limits.get("api") or ()
        # a lease is at most 1 % of the smallest whole-API limit (1: no lease, every request
        # is asked)
        self.api_lease_max = max(1, min([API_LEASE_MAX,
                                         *(item.amount // 100 for item in items)]))
        self.api_period = min([item.get_expiry() for item in items], default=0)

    # --- the store, failing open ------------------------------------------------------------

    def _call(self, fn, *args, default=None):
        if self._down_until and time.monotonic() < self._down_until:
            return default
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - any store failure: the limit is not applied
            with self._lock:
                first = not self._down_until
                self._down_until = time.monotonic() + STORE_RETRY_SECONDS
            if first:
                log.warning("rate limits: the store does not answer (%s); requests pass "
                            "unlimited, retrying every %.0f s", exc, STORE_RETRY_SECONDS)
            if self.metrics is not None:
                self.metrics.inc()
            return default
        if self._down_until:
            with self._lock:
                if self._down_until:
                    log.warning("rate limits: the store answers again")
                    self._down_until = 0.0
        return result

    def _ids(self, scope: str, *parts: str) -> tuple[str, ...]:
        return (self.prefix, scope, *parts)

    def _retry_after(self, item, ids) -> int:
        stats = self._call(self.strategy.get_window_stats, item, *ids)
        if stats is None:
            return 1
        return max(1, math.ceil(stats.reset_time - self.clock()))

    def hit(self, scope: str, *parts: str, cost: int = 1) -> int | None:
        """Count ``cost`` requests against every limit of ``scope``; seconds to wait if one
        is used up (then they were not counted by it), else None."""
        ids = self._ids(scope, *parts)
        for item in self.limits.get(scope, ()):
            if self._call(partial(self.strategy.hit, cost=cost), item, *ids,
                          default=True) is False:
                return self._retry_after(item, ids)
        return None

    def test(self, scope: str, *parts: str) -> int | None:
        """Like ``hit`` without counting: seconds to wait if a limit is used up, else None."""
        ids = self._ids(scope, *parts)
        for item in self.limits.get(scope, ()):
            if self._call(self.strategy.test, item, *ids, default=True) is False:
                return self._retry_after(item, ids)
        return None

    def used(self, scope: str, *parts: str) -> bool:
        """Whether anything counted against ``scope`` is still within its window."""
        ids = self._ids(scope, *parts)
        for item in self.limits.get(scope, ()):
            stats = self._call(self.strategy.get_window_stats, item, *ids)
            if stats is not None and stats.remaining < item.amount:
                return True
        return False

    def clear(self, scope: str, *parts: str) -> None:
        ids = self._ids(scope, *parts)
        for item in self.limits.get(scope, ()):
            self._call(self.strategy.clear, item, *ids)

    # --- the policy ---------------------------------------------------------------------------

    def api(self, address: str) -> int | None:
        """The whole-API limit for one request from ``address``: seconds to wait, or None.
        Counted ahead in leases (``ApiLease``, the module's docstring)."""
        if not self.limits.get("api"):
            return None
        now = self.monotonic()
        with self._lock:
            lease = self._leases.get(address)
            if lease is None:
                lease = self._leases[address] = ApiLease()
                if len(self._leases) > MAX_LEASES:
                    self._leases.popitem(last=False)  # its next request is simply asked
            else:
                self._leases.move_to_end(address)
            if now < lease.refused_until:  # the store said so: no need to ask it again
                return max(1, math.ceil(lease.refused_until - now))
            if lease.left and now < lease.until:
                lease.left -= 1
                return None
            if lease.asking:  # another thread is renewing it: this request alone, exactly
                size, renew = 1, False
            else:
                if lease.size and not lease.left and now < lease.until:
                    # used up within its period: as large again, or twice if fast
                    fast = now - lease.counted_at < API_LEASE_SECONDS
                    size = min(self.api_lease_max, lease.size * 2 if fast else lease.size)
                else:  # none yet, or its period is over (the address was quiet)
                    size = 1
                renew, lease.asking = True, True
        wait: int | None = 0  # (if asking the store raised: no lease)
        try:
            wait = self.hit("api", address, cost=size)
            if wait is not None and size > 1:  # no room for a lease: maybe for this one
                size, wait = 1, self.hit("api", address)
        finally:
            if renew:
                with self._lock:
                    lease.asking = False
                    if wait is None:  # counted: this request, and size - 1 more to come
                        lease.size, lease.left, lease.counted_at = size, size - 1, now
                        lease.until = now + self.api_period
                    else:
                        lease.size = lease.left = 0
        if wait is not None:
            with self._lock:
                lease.refused_until = now + wait
        return wait

    def before(self, guard: Guard, address: str, account: str | None) -> int | None:
        """Seconds to wait before ``guard``'s route may be called from ``address`` for
        ``account``, or None (then an attempt-counting route has been counted)."""
        name = guard.name
        per_account, total = f"{name}_account", f"{name}_account_total"
        if guard.failures:  # only failures count (``after``): here they are only checked
            wait = self.test(name, address)
            if wait is None and account is not None:
                wait = self.test(per_account, account, address)
                if wait is None:
                    wait = self._ceiling(total, account,
                                         lambda: self.used(per_account, account, address))
            return wait
        wait = self.hit(name, address)
        if wait is None and account is not None:
            seen = self.used(per_account, account, address)
            wait = self.hit(per_account, account, address)
            if wait is None:
                wait = self._ceiling(total, account, lambda: seen)
                if wait is None:
                    self.hit(total, account)
        return wait

    def _ceiling(self, total: str, account: str, seen) -> int | None:
        """The account's ceiling from all addresses refuses only an address that has already
        failed (or asked) for the account in its window (``seen()``): never a newcomer, such
        as its owner."""
        wait = self.test(total, account)
        return wait if wait is not None and seen() else None

    def after(self, guard: Guard, address: str, account: str | None, status: int) -> bool:
        """Record the answer of ``guard``'s route; True if it was a counted failure."""
        if not guard.failures:
            return False
        if status in guard.failures:
            self.hit(guard.name, address)
            if account is not None:
                self.hit(f"{guard.name}_account", account, address)
                self.hit(f"{guard.name}_account_total", account)
            return True
        if 200 <= status < 300 and account is not None:  # the owner got in from here
            self.clear(f"{guard.name}_account", account, address)
        return False


class TrustedProxies:
    """WSGI middleware: behind the reverse proxies of ``networks``, the client is the nearest
    address in ``X-Forwarded-For`` that is not one of them. A peer that is not a trusted proxy
    is the client whatever the header says (clients cannot choose their address), and so is
    everyone when no proxy is trusted (the default)."""

    def __init__(self, app, networks: str):
        self.app = app
        self.networks = [ipaddress.ip_network(n.strip(), strict=False)
                         for n in networks.split(",") if n.strip()]

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded: str) -> str:
        if not self.networks or not self.trusted(peer):
            return peer
        client = peer
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:  # garbage: the proxy before it cannot be believed
                break
            client = hop
            if not self.trusted(hop):
                break
        return client

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        client = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
        if client != peer:
            environ["berth.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)


def _account_of(guard: Guard) -> str | None:
    if guard.account is None:
        return None
    # any content type, as the route itself parses it; cached: the route reads it again
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return None
    value = body.get(guard.account)
    return account_key(guard.identify(value) if guard.identify is not None else value)


def _refuse(limit: str, wait: int):
    from gateway.metrics import RATE_LIMITED
    RATE_LIMITED.labels(limit).inc()
    raise TooManyRequests(MESSAGES.get(limit, "Too many requests; try again later"),
                          [{"field": "retry_after", "message": str(wait)}])


def install(app: Flask, settings) -> None:
    """Apply the limits to every request of ``app`` (after the request id and the metrics'
    timer; register after ``audit.install`` so a counted failure reaches the audit)."""
    from gateway.metrics import RATE_LIMIT_STORE_ERRORS
    storage = open_storage(settings.rate_limit_storage, settings.rate_limit_prefix,
                           settings.env)
    app.extensions["limiter"] = Limiter(storage, limits_from_settings(settings),
                                        settings.rate_limit_prefix,
                                        metrics=RATE_LIMIT_STORE_ERRORS)
    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)

    @app.before_request
    def _limit():
        limiter: Limiter = current_app.extensions["limiter"]
        address = client_key(request.remote_addr)
        wait = limiter.api(address)
        if wait is not None:
            _refuse("api", wait)
        rule = request.url_rule
        guard = GUARDS.get(f"{request.method} {rule.rule}") if rule is not None else None
        if guard is None:
            return
        account = _account_of(guard)
        g.rate_guard = (guard, address, account)
        wait = limiter.before(guard, address, account)
        if wait is not None:
            _refuse(guard.name, wait)

    @app.after_request
    def _count(response):
        guarded = g.pop("rate_guard", None)
        if guarded is not None and response.status_code != 429:
            guard, address, account = guarded
            failed = current_app.extensions["limiter"].after(guard, address, account,
                                                             response.status_code)
            if failed and guard.audit_failures:
                g.audit_failure = True  # gateway.audit records it, address and all
        return response
