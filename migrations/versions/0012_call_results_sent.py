"""call_results remembers that its write was sent (sent_at, sent_log_id) and can be 'unknown'

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without default: catalogue changes only. The running release
    # never writes 'unknown' nor reads the new columns; the wider check accepts its rows.
    op.add_column('call_results', sa.Column('sent_at', sa.DateTime(timezone=True),
                                            nullable=True))
    op.add_column('call_results', sa.Column('sent_log_id', sa.Uuid(), nullable=True))
    op.drop_constraint(op.f('ck_call_results_status'), 'call_results', type_='check')
    op.create_check_constraint(op.f('ck_call_results_status'), 'call_results',
                               "status IN ('running', 'succeeded', 'unknown')")


def downgrade() -> None:
    # The old code knows no 'unknown': such a key becomes a stale claim, which the old
    # code takes over and sends again. Reconcile OUTCOME_UNKNOWN letters first.
    op.execute("UPDATE call_results SET status = 'running' WHERE status = 'unknown'")
    op.drop_constraint(op.f('ck_call_results_status'), 'call_results', type_='check')
    op.create_check_constraint(op.f('ck_call_results_status'), 'call_results',
                               "status IN ('running', 'succeeded')")
    op.drop_column('call_results', 'sent_log_id')
    op.drop_column('call_results', 'sent_at')
