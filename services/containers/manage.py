"""The containers service's part in ``python -m berth.manage`` (found there by name)."""
from __future__ import annotations

from sqlalchemy import select, update

from berth.db import make_engine
from berth.docker.sealing import seal, unseal
from berth.settings import get_settings
from services.containers.models import Server


def reseal() -> str:
    """Seal every stored TLS client key again with the newest key of BERTH_SECRETS_KEY, so an
    older key can then be dropped from it (berth.docker.sealing)."""
    keys = get_settings().sealing_keys
    engine = make_engine(get_settings().database_url_for("containers"))
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(Server.id, Server.tls_client_key)
                                .where(Server.tls_client_key.is_not(None))).all()
            for server_id, key in rows:
                conn.execute(update(Server).where(Server.id == server_id).values(
                    tls_client_key=seal(unseal(key, keys), keys)))
    finally:
        engine.dispose()
    return f"resealed {len(rows)} TLS client key(s) with the newest key"


COMMANDS = {"reseal": reseal}  # python -m berth.manage reseal
