"""integrations can be deleted and keep their row; the name is unique among live ones

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('integrations', sa.Column('deleted_at', sa.DateTime(timezone=True),
                                            nullable=True))
    op.drop_constraint(op.f('ck_integrations_status'), 'integrations', type_='check')
    op.create_check_constraint(op.f('ck_integrations_status'), 'integrations',
                               "status IN ('active', 'disabled', 'deleted')")
    # The index first, then the constraint: names stay unique at every moment. The
    # table holds one row per integration, so a plain (locking) build is instant.
    op.create_index('uq_integrations_tenant_id_name_live', 'integrations',
                    ['tenant_id', 'name'], unique=True,
                    postgresql_where=sa.text("status <> 'deleted'"))
    op.drop_constraint(op.f('uq_integrations_tenant_id_name'), 'integrations', type_='unique')
    op.execute('ALTER INDEX uq_integrations_tenant_id_name_live '
               'RENAME TO uq_integrations_tenant_id_name')


def downgrade() -> None:
    # Deleted rows would collide with live ones under the old constraint: drop them.
    op.execute("DELETE FROM integrations WHERE status = 'deleted'")
    op.drop_index('uq_integrations_tenant_id_name', table_name='integrations')
    op.create_unique_constraint(op.f('uq_integrations_tenant_id_name'), 'integrations',
                                ['tenant_id', 'name'])
    op.drop_constraint(op.f('ck_integrations_status'), 'integrations', type_='check')
    op.create_check_constraint(op.f('ck_integrations_status'), 'integrations',
                               "status IN ('active', 'disabled')")
    op.drop_column('integrations', 'deleted_at')
