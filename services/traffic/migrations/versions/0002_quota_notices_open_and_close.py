"""quota notices open and close: ``cleared_at`` (NULL while the user is over their quota).

Notices of months that have ended are closed here (``cleared_at = noticed_at``), so the first
sweep after the upgrade does not announce, for every past month, that it is over. Notices of
the current month stay open: the user is still over their quota.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 01:40:54.153115
"""
from __future__ import annotations

from collections.abc import Sequence

import datetime as dt

import sqlalchemy as sa
from alembic import op
from berth.db import UTCDateTime

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('traffic_quota_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cleared_at', UTCDateTime(), nullable=True))
        batch_op.create_index('ix_traffic_quota_notices_open', ['user_id'], unique=False,
                              sqlite_where=sa.text('cleared_at IS NULL'),
                              postgresql_where=sa.text('cleared_at IS NULL'))
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    op.execute(sa.text("UPDATE traffic_quota_notices SET cleared_at = noticed_at "
                       "WHERE month < :month").bindparams(month=month))


def downgrade() -> None:
    with op.batch_alter_table('traffic_quota_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_traffic_quota_notices_open',
                            sqlite_where=sa.text('cleared_at IS NULL'),
                            postgresql_where=sa.text('cleared_at IS NULL'))
        batch_op.drop_column('cleared_at')
