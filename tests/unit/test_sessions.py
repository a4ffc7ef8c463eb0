"""gateway.sessions: the one check every bearer token passes, with its per-worker cache."""
import secrets
import threading

import pytest

from berth.errors import ServiceUnavailable, Unauthorized
from berth.tokens import SESSION_ENDED, issue_access_token
from gateway.sessions import TokenChecker

SECRET = secrets.token_urlsafe(48)
SID, OTHER_SID = "a" * 32, "b" * 32


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Users:
    """The users service's ``token_state``, as a table the test edits."""

    def __init__(self):
        self.version, self.disabled, self.revoked, self.exists = 0, False, [], True
        self.asked = 0
        self.down = False

    def token_state(self, user_id):
        self.asked += 1
        if self.down:
            raise ServiceUnavailable("The users service did not answer")
        return {"user_id": user_id, "exists": self.exists, "version": self.version,
                "disabled": self.disabled, "role": "user", "revoked_sessions": self.revoked}


@pytest.fixture
def users():
    return Users()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def checker(users, clock):
    return TokenChecker(SECRET, users.token_state, 2.0, clock)


def token(sid=SID, version=0, user_id=7):
    return issue_access_token(SECRET, user_id, "user", "alice", 3600, sid, version)


def refused(checker, credential):
    with pytest.raises(Unauthorized) as caught:
        checker.check(credential)
    return str(caught.value)


def test_a_live_token_names_its_caller_and_session(checker):
    actor, session_id = checker.check(token())
    assert (actor.user_id, actor.role, actor.username, session_id) == (7, "user", "alice", SID)


@pytest.mark.parametrize("change", ["version", "disabled", "revoked", "deleted"])
def test_each_revocation_is_refused_once_the_cache_is_older_than_max_age(checker, users, clock,
                                                                        change):
    checker.check(token())
    if change == "version":
        users.version = 1
    elif change == "disabled":
        users.disabled = True
    elif change == "revoked":
        users.revoked = [SID]
    else:
        users.exists = False
    clock.now += 1.9
    checker.check(token())  # still the state fetched 1.9 s ago
    clock.now += 0.1
    assert refused(checker, token()) == SESSION_ENDED


def test_a_revoked_session_leaves_the_users_other_sessions_working(checker, users):
    users.revoked = [SID]
    assert refused(checker, token(SID)) == SESSION_ENDED
    assert checker.check(token(OTHER_SID))[1] == OTHER_SID


def test_a_token_issued_after_the_version_moved_works(checker, users):
    users.version = 3
    assert refused(checker, token(version=2)) == SESSION_ENDED
    assert checker.check(token(version=3))


def test_one_question_per_user_per_max_age(checker, users, clock):
    for _ in range(50):
        checker.check(token())
    assert users.asked == 1
    checker.check(token(user_id=8))
    assert users.asked == 2
    clock.now += 2.0
    checker.check(token())
    assert users.asked == 3


def test_forget_asks_again_at_once(checker, users):
    checker.check(token())
    users.revoked = [SID]
    checker.forget(7)
    assert refused(checker, token()) == SESSION_ENDED


def test_when_users_cannot_answer_a_stale_state_is_not_trusted(checker, users, clock):
    checker.check(token())
    users.down = True
    checker.check(token())  # fresh enough: no question
    clock.now += 2.0
    with pytest.raises(ServiceUnavailable):
        checker.check(token())


def test_concurrent_requests_of_one_user_share_one_question(users, clock):
    gate = threading.Event()
    asked = []

    def slow_state(user_id):
        asked.append(user_id)
        gate.wait(5)
        return users.token_state(user_id)

    checker = TokenChecker(SECRET, slow_state, 2.0, clock)
    results = []
    threads = [threading.Thread(target=lambda: results.append(checker.check(token())))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8 and asked == [7]


def test_an_invalid_token_is_refused_before_any_question(checker, users):
    assert refused(checker, "garbage") == "Invalid token"
    assert users.asked == 0


def test_max_age_zero_asks_every_time(users, clock):
    checker = TokenChecker(SECRET, users.token_state, 0.0, clock)
    checker.check(token())
    checker.check(token())
    assert users.asked == 2


def test_requests_queued_behind_a_failed_question_fail_at_once(users, clock):
    """With users away, one RPC timeout per user at a time, not one per queued request."""
    gate = threading.Event()
    asked = []

    def failing_state(user_id):
        asked.append(user_id)
        gate.wait(5)
        raise ServiceUnavailable("The users service did not answer")

    checker = TokenChecker(SECRET, failing_state, 2.0, clock)
    errors = []

    def read():
        try:
            checker.check(token())
        except ServiceUnavailable as exc:
            errors.append(exc)
    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 6 and asked == [7]
    clock.now += 0.5  # a request arriving after the failure asks again
    with pytest.raises(ServiceUnavailable):
        checker.check(token())
    assert asked == [7, 7]


def test_a_token_newer_than_the_state_kept_makes_the_worker_ask_again():
    """A fresh token from a change made through another worker (a password or two-factor
    change raises the version) works at once here too, not after BERTH_TOKEN_CHECK_SECONDS."""
    from berth import tokens as berth_tokens
    from gateway.sessions import TokenChecker
    secret = "s" * 40
    versions = iter([0, 1])
    asked = []

    def fetch(user_id):
        asked.append(user_id)
        return {"version": next(versions), "disabled": False, "exists": True,
                "revoked_sessions": []}
    checker = TokenChecker(secret, fetch, max_age=60, clock=lambda: 0.0)
    old = berth_tokens.issue_access_token(secret, 5, "user", "u", 60, "a" * 32, 0)
    new = berth_tokens.issue_access_token(secret, 5, "user", "u", 60, "a" * 32, 1)
    assert checker.check(old)[0].user_id == 5
    assert checker.check(new)[0].user_id == 5 and asked == [5, 5]
    with pytest.raises(Unauthorized):  # and the old one is refused from then on
        checker.check(old)


def test_a_token_is_verified_once_per_worker_and_its_expiry_on_every_use(checker, users,
                                                                         monkeypatch):
    import time as real_time

    from berth import tokens
    decoded = []
    decode = tokens.decode
    monkeypatch.setattr(tokens, "decode", lambda *a: decoded.append(a) or decode(*a))
    live = token()
    for _ in range(5):
        assert checker.check(live)[1] == SID
    assert len(decoded) == 1  # the signature and the claims' shape: once
    users.revoked = [SID]
    checker.forget(7)
    assert refused(checker, live) == SESSION_ENDED  # the session: every time
    # a forged token shares no entry with the real one (the key is the whole text)
    head, body, signature = token(sid=OTHER_SID).split(".")
    assert refused(checker, f"{head}.{body}.{signature[:-2]}AA") == "Invalid token"
    # expiry: a remembered token is refused once it has expired (past the same leeway)
    users.revoked = []
    checker.forget(7)
    ending = issue_access_token(SECRET, 7, "user", "alice", 1 - tokens.LEEWAY_SECONDS, SID, 0)
    assert checker.check(ending)[1] == SID
    real_time.sleep(1.2)
    assert refused(checker, ending) == "Token has expired"


def test_a_worker_remembers_at_most_max_verified_tokens(checker, monkeypatch):
    from gateway import sessions
    monkeypatch.setattr(sessions, "MAX_VERIFIED", 3)
    made = [token(sid=f"{n:032d}") for n in range(5)]
    for credential in made:
        checker.check(credential)
    assert list(checker._verified) == made[2:]
