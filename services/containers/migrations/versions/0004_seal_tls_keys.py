"""seal TLS client keys: servers.tls_client_key written before sealing is sealed now

Sealing needs BERTH_SECRETS_KEY (berth.docker.sealing); with plaintext keys present and no key set,
the upgrade stops and says so rather than leave them in clear text. Downgrade unseals them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 06:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from berth.docker.sealing import is_sealed, seal, unseal
from berth.settings import get_settings

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rewrite(change, wanted) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, tls_client_key FROM servers "
                                "WHERE tls_client_key IS NOT NULL")).all()
    rows = [(server_id, key) for server_id, key in rows if wanted(key)]
    if not rows:
        return
    keys = get_settings().sealing_keys  # raises, naming BERTH_SECRETS_KEY, when it is unset
    for server_id, key in rows:
        conn.execute(sa.text("UPDATE servers SET tls_client_key = :key WHERE id = :id"),
                     {"key": change(key, keys), "id": server_id})


def upgrade() -> None:
    _rewrite(seal, lambda key: not is_sealed(key))


def downgrade() -> None:
    _rewrite(unseal, is_sealed)
