"""index integration_logs.task_id (attempts of one task are counted from its rows)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:55:00
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY: integration_logs is the busiest table; never block its writers.
    with op.get_context().autocommit_block():
        op.create_index(op.f('ix_integration_logs_task_id'), 'integration_logs', ['task_id'],
                        unique=False, postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(op.f('ix_integration_logs_task_id'), table_name='integration_logs',
                      postgresql_concurrently=True, if_exists=True)
