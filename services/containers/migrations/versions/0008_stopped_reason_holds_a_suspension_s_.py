"""stopped_reason holds a suspension's reason

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:42:06.345201
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.alter_column('stopped_reason',
               existing_type=sa.VARCHAR(length=32),
               type_=sa.String(length=160),
               existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.alter_column('stopped_reason',
               existing_type=sa.String(length=160),
               type_=sa.VARCHAR(length=32),
               existing_nullable=True)
