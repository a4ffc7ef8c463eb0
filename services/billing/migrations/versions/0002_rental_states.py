"""rental states: active, expired, cancelled; being renewed is rentals.renewed_at

A running rental used to be ``active`` or ``renewed`` (renewed by the admin route), and a
rental extended by redeeming a serial stayed ``active``. Now every running rental is
``active`` and ``renewed_at`` says when it was last renewed: for a ``renewed`` row, its last
update (the renewal); for a rental extended by a serial, when the last such serial was used.
The partial unique index on running rentals follows the new word.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:07:51.612004
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

OLD_RUNNING = "status IN ('active', 'renewed')"
RUNNING = "status = 'active'"


def _swap_index(batch_op, old: str, new: str) -> None:
    batch_op.drop_index('uq_rentals_one_current', sqlite_where=sa.text(old),
                        postgresql_where=sa.text(old))
    batch_op.create_index('uq_rentals_one_current', ['user_id'], unique=True,
                          sqlite_where=sa.text(new), postgresql_where=sa.text(new))


def upgrade() -> None:
    with op.batch_alter_table('rentals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('renewed_at', UTCDateTime(), nullable=True))
    # at most one of active/renewed per user held before, so at most one active holds after
    op.execute("UPDATE rentals SET status = 'active', renewed_at = updated_at "
               "WHERE status = 'renewed'")
    op.execute("UPDATE rentals SET renewed_at = ("
               "SELECT MAX(s.used_at) FROM serials s WHERE s.rental_id = rentals.id "
               "AND (rentals.serial_id IS NULL OR s.id <> rentals.serial_id)) "
               "WHERE renewed_at IS NULL")
    with op.batch_alter_table('rentals', schema=None) as batch_op:
        _swap_index(batch_op, OLD_RUNNING, RUNNING)


def downgrade() -> None:
    with op.batch_alter_table('rentals', schema=None) as batch_op:
        _swap_index(batch_op, RUNNING, OLD_RUNNING)
    op.execute("UPDATE rentals SET status = 'renewed' "
               "WHERE status = 'active' AND renewed_at IS NOT NULL")
    with op.batch_alter_table('rentals', schema=None) as batch_op:
        batch_op.drop_column('renewed_at')
