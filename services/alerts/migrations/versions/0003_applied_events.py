"""applied events: the newest event of each kind per subject, for event order

Alerts decided "is this event older than the last opposite one" from audit-log rows, which an
admin may delete and retention prunes; ``applied_events`` now holds that order. Filled here
from the audit rows still present, so events in flight across the upgrade are ordered as
before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:02:55.244754
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
    op.create_table('applied_events',
    sa.Column('subject_type', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('occurred_at', UTCDateTime(), nullable=False),
    sa.Column('applied_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('subject_type', 'subject_id', 'kind')
    )
    with op.batch_alter_table('applied_events', schema=None) as batch_op:
        batch_op.create_index('ix_applied_events_kind_applied',
                              ['subject_type', 'kind', 'applied_at'], unique=False)
    _fill_from_the_audit_log()


# the events services.alerts.ordering asks about (server_updated: when it set maintenance)
ORDERED = ('server_came_back', 'server_removed', 'container_recovered', 'container_removed')
audit_log = sa.table('audit_log', sa.column('source', sa.String), sa.column('action', sa.String),
                     sa.column('subject_type', sa.String), sa.column('subject_id', sa.String),
                     sa.column('occurred_at', UTCDateTime()),
                     sa.column('recorded_at', UTCDateTime()), sa.column('details', sa.JSON))
applied_events = sa.table('applied_events', sa.column('subject_type', sa.String),
                          sa.column('subject_id', sa.Integer), sa.column('kind', sa.String),
                          sa.column('occurred_at', UTCDateTime()),
                          sa.column('applied_at', UTCDateTime()))


def _fill_from_the_audit_log() -> None:
    bind = op.get_bind()
    newest: dict[tuple[str, int, str], tuple] = {}

    def keep(subject_type, subject_id, kind, occurred_at, recorded_at):
        if not (subject_id or '').isdigit() or occurred_at is None:
            return
        key = (subject_type, int(subject_id), kind)
        before = newest.get(key)
        if before is not None:
            occurred_at = max(occurred_at, before[0])
            recorded_at = max(recorded_at or before[1], before[1])
        newest[key] = (occurred_at, recorded_at or occurred_at)

    rows = bind.execute(
        sa.select(audit_log.c.subject_type, audit_log.c.subject_id, audit_log.c.action,
                  sa.func.max(audit_log.c.occurred_at), sa.func.max(audit_log.c.recorded_at))
        .where(audit_log.c.source == 'event', audit_log.c.action.in_(ORDERED))
        .group_by(audit_log.c.subject_type, audit_log.c.subject_id, audit_log.c.action))
    for subject_type, subject_id, action, occurred_at, recorded_at in rows:
        keep(subject_type, subject_id, action, occurred_at, recorded_at)
    updates = bind.execute(
        sa.select(audit_log.c.subject_id, audit_log.c.occurred_at, audit_log.c.recorded_at,
                  audit_log.c.details)
        .where(audit_log.c.source == 'event', audit_log.c.action == 'server_updated',
               audit_log.c.subject_type == 'server'))
    for subject_id, occurred_at, recorded_at, details in updates:
        if ((details or {}).get('payload') or {}).get('maintenance'):
            keep('server', subject_id, 'server_maintenance', occurred_at, recorded_at)
    if newest:
        op.bulk_insert(applied_events, [
            {'subject_type': t, 'subject_id': i, 'kind': k, 'occurred_at': o, 'applied_at': a}
            for (t, i, k), (o, a) in newest.items()])


def downgrade() -> None:
    with op.batch_alter_table('applied_events', schema=None) as batch_op:
        batch_op.drop_index('ix_applied_events_kind_applied')
    op.drop_table('applied_events')
