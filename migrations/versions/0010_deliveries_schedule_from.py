"""deliveries.schedule_from: re-sends restart the retry schedule, attempts keep counting

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 09:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table, and
    # the release still running (which resets attempts instead) never writes it.
    op.add_column('deliveries', sa.Column('schedule_from', sa.Integer(), server_default='0',
                                          nullable=False))


def downgrade() -> None:
    op.drop_column('deliveries', 'schedule_from')
