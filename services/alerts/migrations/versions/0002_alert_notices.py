"""alert notices: alerts raised and resolved wait here to be mailed as one digest

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from berth.db import UTCDateTime

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('subject_key', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('handled_at', UTCDateTime(), nullable=True),
    sa.Column('mail_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_notices_alert_id'), ['alert_id'],
                              unique=False)
        batch_op.create_index('ix_alert_notices_status', ['status', 'id'], unique=False)
        batch_op.create_index('ix_alert_notices_subject', ['subject_key', 'kind', 'status'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_notices_subject')
        batch_op.drop_index('ix_alert_notices_status')
        batch_op.drop_index(batch_op.f('ix_alert_notices_alert_id'))
    op.drop_table('alert_notices')
