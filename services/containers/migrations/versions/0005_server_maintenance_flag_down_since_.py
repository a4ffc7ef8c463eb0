"""server maintenance flag, down_since backfill, incident deaths

- ``servers.maintenance``: maintenance becomes a flag beside online/offline (the probe still
  runs); rows whose status was ``maintenance`` get the flag and status ``offline`` (the next
  health tick says online or offline).
- An offline server always has ``down_since``: rows without one (added while unreachable,
  or from the old maintenance status) get their ``created_at``, the moment Berth added the
  server and first saw it down.
- ``containers.deaths``: times supervision saw a container dead in its open incident.

Downgrade puts the flag back into ``status`` (the backfilled ``down_since`` stays).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:06:51.547579
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deaths', sa.Integer(), server_default='0',
                                      nullable=False))

    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('maintenance', sa.Boolean(),
                                      server_default=sa.text('false'), nullable=False))

    conn = op.get_bind()
    conn.execute(sa.text("UPDATE servers SET maintenance = true, status = 'offline' "
                         "WHERE status = 'maintenance'"))
    conn.execute(sa.text("UPDATE servers SET down_since = created_at "
                         "WHERE status = 'offline' AND down_since IS NULL"))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE servers SET status = 'maintenance' WHERE maintenance = true"))
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('maintenance')

    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_column('deaths')
