"""Accounts without a broker: registration conflicts, login and its throttle, admin updates."""
import datetime as dt

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from berth.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from services.users import accounts, passwords
from services.users.models import Base, User

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
POLICY = accounts.ThrottlePolicy(max_failures=3, window_seconds=600)


def cheap_hash(password: str) -> str:
    return f"plain:{password}"


def cheap_verify(password_hash: str, password: str) -> bool:
    return password_hash == f"plain:{password}"


@pytest.fixture
def session_factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/users.sqlite3")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def add(session_factory, username="alice", email=None, password="password-1", role="user",
        password_hash=None):
    with session_factory() as session:
        user = accounts.create_user(session, username, email or f"{username}@example.com",
                                    password_hash or cheap_hash(password), role)
        session.commit()
        return user.id


def login(session_factory, username, password, now=T0, verify=cheap_verify):
    return accounts.authenticate(session_factory, username, password, now, POLICY, verify)


# --- registration ----------------------------------------------------------------------------

def test_create_user_returns_a_user_with_an_id_and_lowercased_email(session_factory):
    with session_factory() as session:
        user = accounts.create_user(session, "Alice", "Alice@Example.COM", cheap_hash("pw"))
        session.commit()
        assert user.id is not None
        data = accounts.user_to_dict(user)
    assert data["username"] == "Alice"
    assert data["email"] == "alice@example.com"
    assert data["role"] == "user" and data["traffic_limit"] is None
    assert data["disabled"] is False and data["email_verified"] is False
    assert data["created_at"].endswith("Z")


@pytest.mark.parametrize("other", ["alice", "ALICE", "aLiCe"])
def test_username_taken_in_any_letter_case_is_a_conflict(session_factory, other):
    add(session_factory, "Alice", "alice@example.com")
    with session_factory() as session:
        with pytest.raises(Conflict) as error:
            accounts.create_user(session, other, "someone-else@example.com", cheap_hash("x"))
    assert str(error.value) == accounts.TAKEN


@pytest.mark.parametrize("other", ["alice@example.com", "ALICE@EXAMPLE.COM",
                                   "Alice@Example.com"])
def test_email_taken_in_any_letter_case_is_a_conflict(session_factory, other):
    add(session_factory, "alice", "Alice@example.com")
    with session_factory() as session:
        with pytest.raises(Conflict) as error:
            accounts.create_user(session, "bob", other, cheap_hash("x"))
    assert str(error.value) == accounts.TAKEN  # the same words: which one is not told


def test_a_conflict_creates_nothing(session_factory):
    add(session_factory, "alice")
    with session_factory() as session:
        with pytest.raises(Conflict):
            accounts.create_user(session, "ALICE", "new@example.com", cheap_hash("x"))
        session.commit()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_list_users_pages_in_id_order_with_total(session_factory):
    ids = [add(session_factory, f"user{i}") for i in range(5)]
    with session_factory() as session:
        page, total = accounts.list_users(session, limit=2, offset=1)
        assert total == 5
        assert [u.id for u in page] == ids[1:3]


def test_get_user_unknown_id_is_not_found(session_factory):
    with session_factory() as session:
        with pytest.raises(NotFound, match="User 999 not found"):
            accounts.get_user(session, 999)


# --- authenticate ----------------------------------------------------------------------------

def test_right_password_returns_credentials_and_login_name_is_case_insensitive(session_factory):
    user_id = add(session_factory, "Alice")
    who = login(session_factory, "aLICE", "password-1")
    assert who.user_id == user_id
    assert who.username == "Alice" and who.role == "user" and who.disabled is False


def test_wrong_password_and_unknown_user_get_the_same_unauthorized_message(session_factory):
    add(session_factory, "alice")
    with pytest.raises(Unauthorized) as wrong:
        login(session_factory, "alice", "not-the-password")
    with pytest.raises(Unauthorized) as unknown:
        login(session_factory, "nobody", "not-the-password")
    assert str(wrong.value) == str(unknown.value) == "Invalid username or password"


def test_unknown_user_still_runs_the_password_check_against_a_dummy_hash(session_factory):
    checked = []

    def verify(password_hash, password):
        checked.append(password_hash)
        return False

    with pytest.raises(Unauthorized):
        login(session_factory, "nobody", "whatever", verify=verify)
    assert checked == [passwords.DUMMY_HASH]


def test_throttle_blocks_even_the_right_password_after_max_failures(session_factory):
    add(session_factory, "alice")
    for i in range(POLICY.max_failures):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong", now=T0 + dt.timedelta(seconds=i))
    with pytest.raises(TooManyRequests) as blocked:
        login(session_factory, "alice", "password-1", now=T0 + dt.timedelta(seconds=10))
    retry = blocked.value.details[0]
    assert retry["field"] == "retry_after"
    assert 0 < int(retry["message"]) <= POLICY.window_seconds


def test_throttle_counts_failures_per_account_in_any_letter_case(session_factory):
    add(session_factory, "alice")
    for name in ("alice", "ALICE", "Alice"):
        with pytest.raises(Unauthorized):
            login(session_factory, name, "wrong")
    with pytest.raises(TooManyRequests):
        login(session_factory, "alice", "password-1")


def test_throttle_is_per_account_and_applies_to_unknown_accounts(session_factory):
    add(session_factory, "alice")
    for _ in range(POLICY.max_failures):
        with pytest.raises(Unauthorized):
            login(session_factory, "ghost", "wrong")
    with pytest.raises(TooManyRequests):
        login(session_factory, "ghost", "wrong")
    assert login(session_factory, "alice", "password-1").username == "alice"


def test_throttle_below_the_limit_still_lets_the_right_password_in(session_factory):
    add(session_factory, "alice")
    for _ in range(POLICY.max_failures - 1):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong")
    assert login(session_factory, "alice", "password-1").username == "alice"


def test_throttle_expires_with_its_window(session_factory):
    add(session_factory, "alice")
    for _ in range(POLICY.max_failures):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong", now=T0)
    window = dt.timedelta(seconds=POLICY.window_seconds)
    with pytest.raises(TooManyRequests):
        login(session_factory, "alice", "password-1", now=T0 + window - dt.timedelta(seconds=1))
    assert login(session_factory, "alice", "password-1", now=T0 + window).username == "alice"


def test_a_failure_after_the_window_starts_a_fresh_count(session_factory):
    add(session_factory, "alice")
    for _ in range(POLICY.max_failures):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong", now=T0)
    later = T0 + dt.timedelta(seconds=POLICY.window_seconds + 5)
    with pytest.raises(Unauthorized):  # not 429: the old window is over
        login(session_factory, "alice", "wrong", now=later)
    # one failure in the new window is below the limit
    assert login(session_factory, "alice", "password-1", now=later).username == "alice"


def test_successful_login_clears_earlier_failures(session_factory):
    add(session_factory, "alice")
    for _ in range(POLICY.max_failures - 1):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong")
    login(session_factory, "alice", "password-1")
    for _ in range(POLICY.max_failures - 1):
        with pytest.raises(Unauthorized):
            login(session_factory, "alice", "wrong")
    # 4 failures in the window in total, but the success in between reset the count
    assert login(session_factory, "alice", "password-1").username == "alice"


def test_disabled_user_with_the_right_password_is_forbidden(session_factory):
    user_id = add(session_factory, "alice")
    with session_factory() as session:
        accounts.update_user(session, user_id, {"disabled": True})
        session.commit()
    with pytest.raises(Forbidden, match="disabled"):
        login(session_factory, "alice", "password-1")


def test_disabled_user_with_a_wrong_password_gets_the_plain_401(session_factory):
    user_id = add(session_factory, "alice")
    with session_factory() as session:
        accounts.update_user(session, user_id, {"disabled": True})
        session.commit()
    with pytest.raises(Unauthorized, match="Invalid username or password"):
        login(session_factory, "alice", "wrong")


def test_real_argon2id_hashing_and_login(session_factory):
    password_hash = passwords.hash_password("correct horse battery")
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse battery" not in password_hash
    assert password_hash != passwords.hash_password("correct horse battery")  # salted
    assert passwords.verify_password(password_hash, "correct horse battery")
    assert not passwords.verify_password(password_hash, "correct horse battery!")
    assert not passwords.verify_password("not-a-hash", "correct horse battery")
    assert not passwords.needs_rehash(password_hash)
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    assert passwords.needs_rehash(weaker.hash("correct horse battery"))

    add(session_factory, "alice", password_hash=password_hash)
    assert login(session_factory, "alice", "correct horse battery",
                 verify=passwords.verify_password).username == "alice"
    with pytest.raises(Unauthorized):
        login(session_factory, "alice", "wrong", verify=passwords.verify_password)
    with pytest.raises(Unauthorized):
        login(session_factory, "nobody", "wrong", verify=passwords.verify_password)


# --- admin updates ---------------------------------------------------------------------------

def test_update_user_changes_only_the_keys_present(session_factory):
    user_id = add(session_factory, "alice")
    with session_factory() as session:
        accounts.update_user(session, user_id, {"traffic_limit": 5_000_000, "role": "distributor"})
        session.commit()
    with session_factory() as session:
        user, email_changed = accounts.update_user(session, user_id, {"disabled": True})
        session.commit()
        assert (user.role, user.traffic_limit, user.disabled) == ("distributor", 5_000_000, True)
        assert not email_changed


def test_update_user_null_traffic_limit_restores_the_default(session_factory):
    user_id = add(session_factory, "alice")
    with session_factory() as session:
        accounts.update_user(session, user_id, {"traffic_limit": 1000})
        session.commit()
    with session_factory() as session:
        accounts.update_user(session, user_id, {"traffic_limit": None})
        session.commit()
    with session_factory() as session:
        assert session.get(User, user_id).traffic_limit is None


def test_update_user_ignores_null_role_and_null_disabled(session_factory):
    user_id = add(session_factory, "alice", role="distributor")
    with session_factory() as session:
        accounts.update_user(session, user_id, {"role": None, "disabled": None,
                                                "traffic_limit": 7})
        session.commit()
    with session_factory() as session:
        user = session.get(User, user_id)
        assert (user.role, user.disabled, user.traffic_limit) == ("distributor", False, 7)


def test_update_unknown_user_is_not_found(session_factory):
    with session_factory() as session:
        with pytest.raises(NotFound):
            accounts.update_user(session, 42, {"disabled": True})


# --- first admin -----------------------------------------------------------------------------

def test_ensure_admin_creates_once_then_is_a_no_op(session_factory):
    with session_factory() as session:
        assert accounts.ensure_admin(session, "root", "root@example.com", cheap_hash("pw"))
        session.commit()
    with session_factory() as session:
        assert not accounts.ensure_admin(session, "ROOT", "root@example.com", cheap_hash("pw2"))
        session.commit()
    with session_factory() as session:
        users = session.scalars(select(User)).all()
        assert [(u.username, u.role, u.password_hash) for u in users] == [
            ("root", "admin", cheap_hash("pw"))]


def test_ensure_admin_refuses_to_promote_an_existing_non_admin(session_factory):
    user_id = add(session_factory, "root", role="user")
    with session_factory() as session:
        with pytest.raises(Conflict, match="not an admin"):
            accounts.ensure_admin(session, "root", "root@example.com", cheap_hash("pw"))
        session.commit()
    with session_factory() as session:
        assert session.get(User, user_id).role == "user"


def test_the_throttle_key_of_any_accepted_login_name_fits_its_column(session_factory):
    from services.users.models import LoginThrottle
    from services.users.schemas import Login

    name = "İ" * 64
    Login.model_validate({"username": name, "password": "wrong"})  # the gateway lets it in
    with pytest.raises(Unauthorized):
        login(session_factory, name, "wrong")
    limit = LoginThrottle.__table__.c.account.type.length
    with session_factory() as session:
        keys = session.scalars(select(LoginThrottle.account)).all()
    assert keys and all(len(key) <= limit for key in keys)
