"""The users service's part in ``python -m berth.manage`` (found there by name)."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from berth.db import make_engine
from berth.docker.sealing import seal, unseal
from berth.settings import get_settings
from services.users.accounts import ensure_admin
from services.users.models import TwoFactor
from services.users.passwords import hash_password
from services.users.schemas import AddUser


def initialise() -> str:
    """Run by ``init`` after every schema is migrated: the first admin from BERTH_ADMIN_*."""
    return ensure_first_admin()


def ensure_first_admin() -> str:
    s = get_settings()
    if not (s.admin_username and s.admin_password and s.admin_email):
        return ("no first admin created: set BERTH_ADMIN_USERNAME, BERTH_ADMIN_PASSWORD "
                "and BERTH_ADMIN_EMAIL to create one")
    AddUser(username=s.admin_username, password=s.admin_password, email=s.admin_email)
    engine = make_engine(s.database_url_for("users"))
    try:
        with Session(engine) as session:
            created = ensure_admin(session, s.admin_username, s.admin_email,
                                   hash_password(s.admin_password))
            session.commit()
    finally:
        engine.dispose()
    return f"admin {s.admin_username!r} {'created' if created else 'already exists'}"


def reseal() -> str:
    """Seal every stored two-factor secret again with the newest key of BERTH_SECRETS_KEY,
    so an older key can then be dropped from it (berth.docker.sealing)."""
    keys = get_settings().sealing_keys
    engine = make_engine(get_settings().database_url_for("users"))
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(TwoFactor.user_id, TwoFactor.secret)
                                .where(TwoFactor.secret != "")).all()
            for user_id, secret in rows:  # unless a new enrolment replaced it meanwhile
                conn.execute(update(TwoFactor).where(TwoFactor.user_id == user_id,
                                                     TwoFactor.secret == secret).values(
                    secret=seal(unseal(secret, keys), keys)))
    finally:
        engine.dispose()
    return f"resealed {len(rows)} two-factor secret(s) with the newest key"


COMMANDS = {"reseal": reseal}  # python -m berth.manage reseal
