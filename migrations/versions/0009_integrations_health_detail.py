"""integrations: health status "down", last probe latency and error

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: catalogue changes only. The release still running writes
    # only unknown/healthy/degraded, which the wider constraint keeps accepting.
    op.add_column('integrations', sa.Column('last_health_latency_ms', sa.Integer(),
                                            nullable=True))
    op.add_column('integrations', sa.Column('last_health_error', sa.Text(), nullable=True))
    op.drop_constraint(op.f('ck_integrations_health_status'), 'integrations', type_='check')
    op.create_check_constraint(op.f('ck_integrations_health_status'), 'integrations',
                               "health_status IN ('unknown', 'healthy', 'degraded', 'down')")


def downgrade() -> None:
    op.execute("UPDATE integrations SET health_status = 'degraded' WHERE health_status = 'down'")
    op.drop_constraint(op.f('ck_integrations_health_status'), 'integrations', type_='check')
    op.create_check_constraint(op.f('ck_integrations_health_status'), 'integrations',
                               "health_status IN ('unknown', 'healthy', 'degraded')")
    op.drop_column('integrations', 'last_health_error')
    op.drop_column('integrations', 'last_health_latency_ms')
