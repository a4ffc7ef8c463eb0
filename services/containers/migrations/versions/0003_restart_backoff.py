"""restart backoff: supervision counts a container's restarts since it last stayed up

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:28:17.783908
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from berth.db import UTCDateTime

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('restarts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('restarted_at', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_column('restarted_at')
        batch_op.drop_column('restarts')
