"""integration_logs.failover_from / failover_reason: which integration a fallback served for, and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: a catalogue change only, no rewrite of the busiest table;
    # the running release neither reads nor writes these columns.
    op.add_column('integration_logs', sa.Column('failover_from', sa.String(length=128),
                                                nullable=True))
    op.add_column('integration_logs', sa.Column('failover_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('integration_logs', 'failover_reason')
    op.drop_column('integration_logs', 'failover_from')
