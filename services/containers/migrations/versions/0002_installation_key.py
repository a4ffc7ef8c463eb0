"""installation key: the value of ``berth.managed`` on this installation's engine copies

Two installations sharing a Docker host then never take each other's containers for strays.
An installation made before this revision labelled its copies ``berth.managed=1``: it keeps
that key, so the copies it already runs stay its own. A new one gets a random key on first use.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 05:08:03.033556
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from berth.db import UTCDateTime

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table('installation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    if op.get_bind().execute(sa.text("SELECT 1 FROM containers LIMIT 1")).first():
        op.bulk_insert(installation, [{"id": 1, "key": "1",
                                       "created_at": dt.datetime.now(dt.timezone.utc)}])


def downgrade() -> None:
    op.drop_table('installation')
