"""berth.tokens: what a signed token must carry to be accepted."""
import datetime as dt
import json
import secrets
import uuid

import jwt
import pytest

from berth import tokens
from berth.errors import Unauthorized

SECRET = secrets.token_urlsafe(48)
SID = "0123456789abcdef0123456789abcdef"


def issue_access_token(secret, user_id, role, username, ttl):
    return tokens.issue_access_token(secret, user_id, role, username, ttl, SID, 3)


def claims(**overrides):
    now = dt.datetime.now(dt.timezone.utc)
    payload = {"sub": "7", "typ": tokens.ACCESS, "jti": uuid.uuid4().hex, "iat": now,
               "exp": now + dt.timedelta(minutes=5), "role": "user", "username": "alice",
               "sid": SID, "ver": 0}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def craft(secret=SECRET, algorithm="HS256", **overrides):
    return jwt.encode(claims(**overrides), secret, algorithm=algorithm)


def test_access_token_round_trip():
    token = issue_access_token(SECRET, 42, "distributor", "bob", 3600)
    decoded = tokens.decode(SECRET, token, tokens.ACCESS)
    assert decoded["sub"] == "42"
    assert decoded["role"] == "distributor" and decoded["username"] == "bob"
    assert decoded["typ"] == "access"
    assert decoded["exp"] - decoded["iat"] == 3600
    assert decoded["sid"] == SID and decoded["ver"] == 3
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_every_token_gets_its_own_jti():
    first = tokens.decode(SECRET, issue_access_token(SECRET, 1, "user", "a", 60),
                          tokens.ACCESS)
    second = tokens.decode(SECRET, issue_access_token(SECRET, 1, "user", "a", 60),
                           tokens.ACCESS)
    assert first["jti"] != second["jti"]


def test_a_token_expired_within_the_clock_leeway_is_still_accepted():
    token = issue_access_token(SECRET, 1, "user", "alice", -1)
    assert tokens.decode(SECRET, token, tokens.ACCESS)["sub"] == "1"


def test_a_hand_crafted_token_with_every_claim_is_accepted():
    assert tokens.decode(SECRET, craft(), tokens.ACCESS)["username"] == "alice"


def test_expired_token_says_so():
    token = issue_access_token(SECRET, 1, "user", "alice",
                                      -(tokens.LEEWAY_SECONDS + 1))
    with pytest.raises(Unauthorized) as caught:
        tokens.decode(SECRET, token, tokens.ACCESS)
    assert str(caught.value) == "Token has expired"
    assert caught.value.status == 401


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "typ", "sub"])
def test_a_token_missing_a_required_claim_is_rejected(missing):
    token = craft(**{missing: None})
    assert missing not in jwt.decode(token, SECRET, algorithms=["HS256"],
                                     options={"verify_exp": False})
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, token, tokens.ACCESS)


def test_a_file_link_token_is_not_a_login():
    link = tokens.issue(SECRET, tokens.ACL_FILE, 7, 300)
    assert tokens.decode(SECRET, link, tokens.ACL_FILE)["sub"] == "7"
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, link, tokens.ACCESS)


def test_a_login_token_is_not_a_file_link():
    token = issue_access_token(SECRET, 7, "user", "alice", 300)
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, token, tokens.ACL_FILE)


def test_a_token_signed_with_another_secret_is_rejected():
    token = issue_access_token(secrets.token_urlsafe(48), 1, "admin", "root", 3600)
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, token, tokens.ACCESS)


def test_a_tampered_token_is_rejected():
    token = issue_access_token(SECRET, 1, "user", "alice", 3600)
    header, _, signature = token.split(".")
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    payload["role"] = "admin"
    forged_payload = jwt.utils.base64url_encode(json.dumps(payload).encode()).decode()
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, f"{header}.{forged_payload}.{signature}", tokens.ACCESS)


def test_alg_none_is_rejected():
    token = jwt.encode(claims(role="admin"), None, algorithm="none")
    assert token.endswith(".")  # unsigned
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, token, tokens.ACCESS)


def test_another_hmac_algorithm_is_rejected():
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, craft(algorithm="HS512"), tokens.ACCESS)


@pytest.mark.parametrize("sub", ["alice", "-1", "1.5", ""])
def test_a_subject_that_is_not_a_user_id_is_rejected(sub):
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, craft(sub=sub), tokens.ACCESS)


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "Bearer x"])
def test_garbage_is_rejected(garbage):
    with pytest.raises(Unauthorized, match="Invalid token"):
        tokens.decode(SECRET, garbage, tokens.ACCESS)


@pytest.mark.parametrize("overrides", [{"sid": None}, {"ver": None}, {"sid": ""},
                                       {"ver": "0"}, {"ver": True}, {"sid": 12}],
                         ids=["no-sid", "no-ver", "empty-sid", "text-ver", "bool-ver",
                              "number-sid"])
def test_an_access_token_without_a_session_and_version_is_refused(overrides):
    """Tokens issued before sessions existed (no ``sid``/``ver``) are refused after the
    upgrade: their holders sign in again."""
    with pytest.raises(Unauthorized) as caught:
        tokens.decode(SECRET, craft(**overrides), tokens.ACCESS)
    assert str(caught.value) == tokens.SESSION_ENDED


def test_a_file_link_needs_no_session():
    link = tokens.issue(SECRET, tokens.ACL_FILE, 7, 300)
    assert "sid" not in tokens.decode(SECRET, link, tokens.ACL_FILE)
