"""The gateway's rate limits (gateway.limits) on the in-memory store: what counts, who is
refused and for how long, that the account ceiling never refuses a newcomer such as the
owner, that a store failure lets requests through, and the client address behind proxies."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from limits import parse_many
from limits.storage import MemoryStorage

from berth.settings import InsecureConfiguration, Settings
from gateway import limits as rl
from gateway.limits import GUARDS, Guard, Limiter, TrustedProxies, account_key, client_key

LOGIN = GUARDS["POST /api/login"]
MAIL = GUARDS["POST /api/send_verification_email"]
SIGNUP = GUARDS["POST /api/add_user"]
OWNER, ATTACKER = "198.51.100.7", "203.0.113.9"


def limiter(**limits) -> Limiter:
    return Limiter(MemoryStorage(), {k: parse_many(v) for k, v in limits.items()}, "t")


def login_limiter() -> Limiter:
    return limiter(login="20/15 minutes", login_account="5/15 minutes",
                   login_account_total="30/15 minutes")


def fail(lim: Limiter, address: str, account: str, times: int = 1) -> None:
    for _ in range(times):
        assert lim.before(LOGIN, address, account) is None
        assert lim.after(LOGIN, address, account, 401) is True


def test_the_whole_api_limit_refuses_past_its_count_with_the_seconds_to_wait():
    lim = limiter(api="3/minute")
    assert [lim.api(OWNER) for _ in range(3)] == [None, None, None]
    wait = lim.api(OWNER)
    assert wait is not None and 1 <= wait <= 60
    assert lim.api(ATTACKER) is None  # per address


class CountingStorage(MemoryStorage):
    """The in-memory store, counting the whole-API limit's calls to it; ``delay``: seconds
    each call takes (a store across the network)."""

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.calls, self.delay = 0, delay

    def acquire_entry(self, *args, **kwargs):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return super().acquire_entry(*args, **kwargs)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def api_workers(limit: str, workers: int = 1, delay: float = 0.0):
    """``workers`` limiters (gateway workers) over one counting store, on one clock (the
    leases'; the store's window runs on the real one, and a test is over well within it)."""
    store, clock = CountingStorage(delay), Clock()
    lims = [Limiter(store, {"api": parse_many(limit)}, "t") for _ in range(workers)]
    for lim in lims:
        lim.monotonic = clock
    return store, clock, lims


def counted(store, limit: str, address: str) -> int:
    item = parse_many(limit)[0]
    return item.amount - Limiter(store, {}, "t").strategy.get_window_stats(
        item, "t", "api", address).remaining


def test_a_busy_address_is_counted_ahead_in_leases_that_double_up_to_one_percent():
    store, clock, (lim,) = api_workers("1000/minute")
    assert lim.api_lease_max == 10
    assert [lim.api(OWNER) for _ in range(31)] == [None] * 31
    # leases of 1, 2, 4, 8, 10, 10: each counted in the store before its requests went on
    assert store.calls == 6 and counted(store, "1000/minute", OWNER) == 35
    assert lim.api(ATTACKER) is None and store.calls == 7  # per address, from 1 again


def on_one_clock(monkeypatch, clock, lims) -> None:
    """The store's window and the limiters' wall clock on the test's clock too."""
    import types

    import limits.storage.memory
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=clock))
    for lim in lims:
        lim.clock = clock


def test_an_address_that_slows_down_uses_its_lease_up_and_a_quiet_one_starts_at_one(
        monkeypatch):
    store, clock, (lim,) = api_workers("1000/minute")
    on_one_clock(monkeypatch, clock, [lim])
    for _ in range(5):
        lim.api(OWNER)  # leases of 1, 2, 4 (7 counted): the last has 2 left
    calls = store.calls
    for _ in range(6):  # one a second: the 2 left, then a lease of 4 (not faster: not 8)
        clock.now += 1.0
        assert lim.api(OWNER) is None
    assert store.calls == calls + 1 and counted(store, "1000/minute", OWNER) == 11
    clock.now += 61  # a whole minute quiet: what is left of that lease is out of the window
    assert lim.api(OWNER) is None
    assert store.calls == calls + 2 and counted(store, "1000/minute", OWNER) == 1


def test_a_bursty_client_under_its_limit_is_never_refused(monkeypatch):
    limit = "600/minute"
    store, clock, lims = api_workers(limit, workers=2)
    on_one_clock(monkeypatch, clock, lims)
    refused = 0
    for burst in range(100):  # 9 requests 10 ms apart every 1.2 s: 450 a minute
        for n in range(9):
            refused += lims[(burst + n) % 2].api(OWNER) is not None
            clock.now += 0.01
        clock.now += 1.2 - 0.09
    assert refused == 0
    # the store counts what came in the last minute (50 bursts), and at most a lease per
    # worker ahead of it
    assert 450 <= counted(store, limit, OWNER) <= 450 + 2 * lims[0].api_lease_max


def test_a_flood_never_gets_more_than_a_lease_per_worker_past_the_limit(monkeypatch):
    limit = "600/minute"
    store, clock, lims = api_workers(limit, workers=3)
    on_one_clock(monkeypatch, clock, lims)
    admitted = []
    for n in range(6000):  # 20 a second for 5 minutes, spread over three workers
        if lims[n % 3].api(ATTACKER) is None:
            admitted.append(clock.now)
        clock.now += 0.05
    most = max(sum(1 for t in admitted if start <= t < start + 60) for start in admitted)
    assert 600 <= most <= 600 + 3 * (lims[0].api_lease_max - 1), most
    assert len(admitted) <= 5 * (600 + 3 * (lims[0].api_lease_max - 1))


def test_small_whole_api_limits_count_every_request_when_it_comes():
    for limit in ("3/minute", "199/minute", "5000/day;150/minute"):
        store, clock, (lim,) = api_workers(limit)
        assert lim.api_lease_max == 1, limit
        for n in range(1, 4):
            lim.api(OWNER)
            assert store.calls == n * len(parse_many(limit)), limit


def test_no_address_gets_past_its_limit_whatever_worker_serves_it():
    limit = "400/minute"
    store, clock, lims = api_workers(limit, workers=3)
    answers = [lims[n % 3].api(ATTACKER) for n in range(600)]
    admitted = sum(a is None for a in answers)
    # never past the limit; refused early by at most a lease left in each worker
    assert 400 - 3 * (lims[0].api_lease_max - 1) <= admitted <= 400, admitted
    assert all(1 <= a <= 60 for a in answers if a is not None)
    calls = store.calls  # every worker now refuses on its own, without the store
    assert all(lim.api(ATTACKER) is not None for lim in lims) and store.calls == calls
    assert lims[0].api(OWNER) is None  # per address


def test_threads_of_one_worker_never_get_an_address_past_its_limit():
    store, clock, (lim,) = api_workers("600/minute", delay=0.005)
    answers: list = []

    def flood():
        answers.extend(lim.api(ATTACKER) for _ in range(60))
    threads = [threading.Thread(target=flood) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admitted = sum(a is None for a in answers)
    assert 600 - (lim.api_lease_max - 1) <= admitted <= 600, admitted
    assert counted(store, "600/minute", ATTACKER) <= 600


def test_a_refused_address_is_refused_without_the_store_until_its_wait_is_over():
    store, clock, (lim,) = api_workers("5/minute")
    assert [lim.api(ATTACKER) for _ in range(5)] == [None] * 5
    wait = lim.api(ATTACKER)
    calls = store.calls
    assert 1 <= wait <= 60 and lim.api(ATTACKER) is not None and store.calls == calls
    clock.now += wait
    assert lim.api(ATTACKER) is not None and store.calls == calls + 1  # asked again


def test_a_worker_keeps_the_leases_of_at_most_max_leases_addresses(monkeypatch):
    monkeypatch.setattr(rl, "MAX_LEASES", 50)
    store, clock, (lim,) = api_workers("10000/minute")
    for n in range(80):
        lim.api(f"192.0.2.{n}")
    assert len(lim._leases) == 50 and "192.0.2.79" in lim._leases
    assert "192.0.2.0" not in lim._leases  # the least recent went first


def test_correct_logins_never_use_the_allowance_up():
    lim = login_limiter()
    alice = account_key("alice")
    for _ in range(100):
        assert lim.before(LOGIN, OWNER, alice) is None
        assert lim.after(LOGIN, OWNER, alice, 200) is False
    fail(lim, OWNER, alice, 4)
    assert lim.before(LOGIN, OWNER, alice) is None  # 4 failures, then 96 more successes
    for _ in range(96):
        lim.after(LOGIN, OWNER, alice, 200)
    assert lim.before(LOGIN, OWNER, alice) is None


def test_failures_from_one_address_refuse_that_address_not_the_owner_elsewhere():
    lim = login_limiter()
    alice = account_key("alice")
    fail(lim, ATTACKER, alice, 5)
    wait = lim.before(LOGIN, ATTACKER, alice)
    assert wait is not None and 1 <= wait <= 15 * 60
    assert lim.before(LOGIN, OWNER, alice) is None
    assert lim.before(LOGIN, ATTACKER, account_key("bob")) is None  # per account too


def test_an_address_failing_on_many_accounts_is_refused_on_every_account():
    lim = login_limiter()
    for i in range(20):
        fail(lim, ATTACKER, account_key(f"user{i}"))
    assert lim.before(LOGIN, ATTACKER, account_key("someone-new")) is not None
    assert lim.before(LOGIN, ATTACKER, None) is not None  # a body naming nobody
    assert lim.before(LOGIN, OWNER, account_key("user1")) is None


def test_past_the_account_ceiling_only_addresses_that_failed_are_refused():
    lim = login_limiter()
    alice = account_key("alice")
    for i in range(30):  # 30 addresses, one failure each: the ceiling is reached
        fail(lim, f"203.0.113.{i + 1}", alice)
    assert lim.before(LOGIN, "203.0.113.1", alice) is not None
    assert lim.before(LOGIN, "203.0.113.30", alice) is not None
    assert lim.before(LOGIN, OWNER, alice) is None  # the owner never failed: let in
    # once the owner fails too (a typo), they are one of the refused... until a success
    fail(lim, OWNER, alice)
    assert lim.before(LOGIN, OWNER, alice) is not None
    lim.after(LOGIN, OWNER, alice, 200)  # e.g. a login that was in flight succeeded
    assert lim.before(LOGIN, OWNER, alice) is None


def test_a_success_clears_only_its_own_address_count():
    lim = login_limiter()
    alice = account_key("alice")
    fail(lim, ATTACKER, alice, 5)
    fail(lim, OWNER, alice, 4)
    assert lim.after(LOGIN, OWNER, alice, 200) is False
    fail(lim, OWNER, alice, 4)  # a fresh allowance of 5 for the owner's address
    assert lim.before(LOGIN, OWNER, alice) is None
    assert lim.before(LOGIN, ATTACKER, alice) is not None


def test_a_route_counting_attempts_counts_every_one_per_address():
    lim = limiter(signup="10/hour")
    assert all(lim.before(SIGNUP, ATTACKER, None) is None for _ in range(10))
    assert lim.before(SIGNUP, ATTACKER, None) is not None
    assert lim.before(SIGNUP, OWNER, None) is None
    assert lim.after(SIGNUP, OWNER, None, 400) is False  # answers do not count again


def test_mail_per_address_and_account_with_a_ceiling_that_lets_newcomers_in():
    lim = limiter(verification_mail="10/hour", verification_mail_account="3/hour",
                  verification_mail_account_total="4/hour")
    victim = account_key("Victim@Example.com")
    assert victim == account_key("victim@example.com ")
    assert all(lim.before(MAIL, ATTACKER, victim) is None for _ in range(3))
    assert lim.before(MAIL, ATTACKER, victim) is not None  # per account and address
    assert lim.before(MAIL, "203.0.113.50", victim) is None  # the ceiling (4) is now full
    assert lim.before(MAIL, "203.0.113.50", victim) is not None  # seen, ceiling full
    assert lim.before(MAIL, OWNER, victim) is None  # a newcomer still may


class BrokenStorage(MemoryStorage):
    calls = 0

    def _broken(self, *args, **kwargs):
        BrokenStorage.calls += 1
        raise ConnectionError("store down")

    incr = get = acquire_entry = get_moving_window = clear = _broken


class Count:
    value = 0

    def inc(self):
        self.value += 1


def test_a_store_that_does_not_answer_lets_requests_through_and_says_so(caplog, monkeypatch):
    counter = Count()
    lim = Limiter(BrokenStorage(), {"api": parse_many("1/minute"), "login":
                                    parse_many("1/minute")}, "t", metrics=counter)
    with caplog.at_level(logging.WARNING, logger="gateway.limits"):
        assert [lim.api(OWNER) for _ in range(5)] == [None] * 5
        assert lim.before(LOGIN, OWNER, None) is None
        lim.after(LOGIN, OWNER, None, 401)
    warnings = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not per request
    assert counter.value == 1 and BrokenStorage.calls == 1  # then not asked for a while
    monkeypatch.setattr(rl, "STORE_RETRY_SECONDS", 0.0)
    lim._down_until = 1.0  # the pause is over: asked again, fails open again
    assert lim.api(OWNER) is None
    assert counter.value == 2


def test_an_ipv6_client_counts_per_64_and_a_mapped_ipv4_as_itself():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.4") == "192.0.2.4"
    assert client_key("192.0.2.4") == "192.0.2.4"
    assert client_key(None) == "unknown"


def test_account_keys_are_digests_of_the_lower_case_name_and_refuse_non_names():
    assert account_key("Alice") == account_key("alice") and "alice" not in account_key("alice")
    assert len(account_key("x" * 300)) == 32
    for bad in (None, 5, "", "   ", ["alice"], "x" * 400):
        assert account_key(bad) is None


@pytest.mark.parametrize("proxies, peer, forwarded, client", [
    ("", "192.0.2.1", "203.0.113.9", "192.0.2.1"),  # no proxy trusted: the header is ignored
    ("10.0.0.0/8", "192.0.2.1", "203.0.113.9", "192.0.2.1"),  # the peer is no proxy
    ("10.0.0.0/8", "10.1.2.3", "203.0.113.9", "203.0.113.9"),
    # a client cannot choose its address by sending the header itself
    ("10.0.0.0/8", "10.1.2.3", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
    # two proxies in a row: the nearest address that is not one
    ("10.0.0.0/8, 172.16.0.1", "10.1.2.3", "203.0.113.9, 172.16.0.1", "203.0.113.9"),
    ("10.0.0.0/8", "10.1.2.3", "", "10.1.2.3"),
    ("10.0.0.0/8", "10.1.2.3", "198.51.100.1, not-an-address", "10.1.2.3"),
])
def test_the_client_behind_trusted_proxies(proxies, peer, forwarded, client):
    seen = {}

    def app(environ, start_response):
        seen["addr"] = environ["REMOTE_ADDR"]
        return []

    TrustedProxies(app, proxies)({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded},
                                 None)
    assert seen["addr"] == client


def test_every_limit_setting_parses_and_a_bad_one_is_named():
    defaults = Settings(_env_prefix="BERTH_UNUSED_")  # the defaults, not the tests' env
    limits = rl.limits_from_settings(defaults)
    assert limits["api"][0].amount == 600 and limits["login_account"][0].amount == 5
    for guard in GUARDS.values():
        assert guard.name in limits
        if guard.account:
            assert {f"{guard.name}_account", f"{guard.name}_account_total"} <= set(limits)
    assert "totp_account_total" in limits  # ready for the two-factor route's line
    with pytest.raises(ValueError, match="BERTH_RATE_LIMIT_LOGIN"):
        rl.limits_from_settings(Settings(rate_limit_login="twenty a minute"))
    assert rl.limits_from_settings(Settings(rate_limit_api=""))["api"] == []


def test_a_per_process_store_is_refused_outside_development_and_tests():
    with pytest.raises(InsecureConfiguration):
        rl.open_storage("memory://", "berth", "production")
    assert rl.open_storage("memory://", "berth", "test") is not None


def test_every_guard_names_a_declared_route_or_one_the_api_fixes():
    from gateway.app import create_app
    app = create_app()
    routes = {f"{method} {rule.rule}" for rule in app.url_map.iter_rules()
              for method in rule.methods}
    pending = {"POST /api/password/forgot", "POST /api/password/reset"}  # issue 16, item 3
    assert set(GUARDS) - routes <= pending
    assert isinstance(LOGIN, Guard) and LOGIN.failures == (401,) and LOGIN.audit_failures


@pytest.fixture
def tight_app(monkeypatch):
    from berth.settings import reload_settings
    from gateway.app import create_app
    monkeypatch.setenv("BERTH_RATE_LIMIT_API", "5/minute")
    monkeypatch.setenv("BERTH_RATE_LIMIT_SIGNUP", "2/hour")
    monkeypatch.setenv("BERTH_RATE_LIMIT_VERIFICATION_MAIL_ACCOUNT", "1/hour")
    monkeypatch.setenv("BERTH_TRUSTED_PROXIES", "127.0.0.1")
    app = create_app(reload_settings())
    yield app
    monkeypatch.undo()
    reload_settings()


def test_a_refusal_is_a_json_429_with_retry_after(tight_app):
    client = tight_app.test_client()
    for _ in range(2):  # invalid bodies: a 400 that changed nothing, counted all the same
        assert client.post("/api/add_user", json={"username": 1}).status_code == 400
    reply = client.post("/api/add_user", json={"username": 1})
    assert reply.status_code == 429
    assert reply.get_json()["error"] and 1 <= int(reply.headers["Retry-After"]) <= 3600
    assert reply.get_json()["details"][0]["field"] == "retry_after"
    # the whole API: 5 a minute per address (3 used above), another address is apart
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    reply = client.get("/api/openapi.json")
    assert reply.status_code == 429 and 1 <= int(reply.headers["Retry-After"]) <= 60
    other = {"X-Forwarded-For": "192.0.2.77"}  # through the trusted proxy 127.0.0.1
    assert client.get("/api/openapi.json", headers=other).status_code == 200
    assert client.post("/api/add_user", json={"username": 1}, headers=other).status_code == 400


def test_the_account_is_read_from_the_body_whatever_its_content_type(tight_app):
    client = tight_app.test_client()
    body = '{"email": "not an address"}'  # 400 from the route: no RPC, counted all the same
    for content_type in ("application/json", "text/plain"):
        reply = client.post("/api/send_verification_email", data=body,
                            content_type=content_type,
                            headers={"X-Forwarded-For": "192.0.2.10"})
        assert reply.status_code == (400 if content_type == "application/json" else 429)
    assert client.post("/api/send_verification_email", data=body, content_type="text/plain",
                       headers={"X-Forwarded-For": "192.0.2.11"}).status_code == 400


def test_every_operation_documents_the_429(tight_app):
    from gateway.openapi import build
    document = build(tight_app)
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "429" in operation["responses"]


def test_make_run_warns_when_the_store_does_not_answer():
    from berth.manage import check_rate_limit_store
    from tests.support import free_port
    problem = check_rate_limit_store(f"redis://127.0.0.1:{free_port()}/0")
    assert problem and "Redis is not reachable" in problem
    assert check_rate_limit_store("memory://") is None


# --- the two-factor step -------------------------------------------------------------------

TOTP = GUARDS["POST /api/login/2fa"]


def test_the_two_factor_step_counts_failures_against_the_user_its_challenge_names(tight_app):
    from berth import tokens
    secret = tight_app.config["BERTH_SECRET"]
    with tight_app.test_request_context():
        first, second = (tokens.issue_challenge(secret, 7, "alice", 0) for _ in range(2))
        expired = tokens.issue(secret, tokens.LOGIN_CHALLENGE, 7, -600, ver=0)
        assert first != second
        # every challenge of a user, even an expired one, is the same account: a fresh
        # challenge (the attacker has the password) does not start a fresh count
        assert {rl.challenge_user(c) for c in (first, second, expired)} == {"user:7"}
        assert rl.challenge_user(tokens.issue_challenge(secret, 8, "bob", 0)) == "user:8"
        forged = tokens.issue_challenge("another installation's secret " * 2, 7, "alice", 0)
        access = tokens.issue_access_token(secret, 7, "user", "alice", 60, "s" * 32, 0)
        for not_one in (forged, access, "garbage", None, 7, "x" * 5000):
            assert rl.challenge_user(not_one) is None
    assert TOTP.name == "totp" and TOTP.failures == (401,) and TOTP.audit_failures
    for route in ("confirm", "disable", "recovery_codes"):  # a signed-in caller's wrong codes
        guard = GUARDS[f"POST /api/2fa/{route}"]
        assert guard.name == "totp" and guard.failures == (400,) and guard.account is None


def test_an_attackers_wrong_codes_refuse_their_address_never_the_owners():
    lim = limiter(totp="20/15 minutes", totp_account="5/15 minutes",
                  totp_account_total="30/15 minutes")
    alice = account_key("user:7")
    for _ in range(5):
        assert lim.before(TOTP, ATTACKER, alice) is None
        assert lim.after(TOTP, ATTACKER, alice, 401) is True
    wait = lim.before(TOTP, ATTACKER, alice)
    assert wait is not None and 1 <= wait <= 15 * 60
    assert lim.before(TOTP, OWNER, alice) is None  # the owner, elsewhere, goes on
    assert lim.after(TOTP, OWNER, alice, 200) is False
    # six more addresses fail five times each: the account's ceiling (30) is reached...
    for i in range(5):
        for _ in range(5):
            lim.after(TOTP, f"192.0.2.{i}", alice, 401)
    assert lim.before(TOTP, "192.0.2.0", alice) is not None
    # ...and still refuses only addresses that failed on the account, not the owner's
    assert lim.before(TOTP, OWNER, alice) is None
    # a correct code clears the count of the address it came from
    lim.after(TOTP, OWNER, alice, 401)
    lim.after(TOTP, OWNER, alice, 200)
    assert not lim.used("totp_account", alice, OWNER)


def test_an_enrol_only_token_reaches_the_enrolment_routes_and_nothing_else(tight_app):
    from berth import tokens
    from gateway.sessions import ENROL_FIRST
    secret = tight_app.config["BERTH_SECRET"]
    checker = tight_app.extensions["tokens"]
    checker._cache.fetch = lambda user_id: {"version": 0, "disabled": False, "exists": True,
                                            "revoked_sessions": []}
    limited = tokens.issue_access_token(secret, 9, "admin", "root", 60, "s" * 32, 0,
                                        enrol_only=True)
    full = tokens.issue_access_token(secret, 9, "admin", "root", 60, "s" * 32, 0)
    client = tight_app.test_client()
    other = {"X-Forwarded-For": "192.0.2.99"}  # (tight_app's API limit is per address)
    reply = client.get("/api/users", headers={**other, "Authorization": f"Bearer {limited}"})
    assert reply.status_code == 403 and reply.get_json()["error"] == ENROL_FIRST
    assert checker.check(full, "/api/users")[0].role == "admin"
    for route in ("/api/2fa", "/api/2fa/enrol", "/api/2fa/confirm", "/api/logout"):
        assert checker.check(limited, route)[0].user_id == 9
    from berth.errors import Forbidden
    for route in ("/api/users", "/api/password", "/api/2fa/disable", None):
        with pytest.raises(Forbidden):
            checker.check(limited, route)
