"""usage per tenant, integration, operation and day; roll-up position; budget alerts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import UserDefinedType


class Xid8(UserDefinedType):  # type: ignore[type-arg]
    """PostgreSQL's xid8 (frozen here: a migration never imports the live models)."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The old usage table was never written or read by any release: replace it.
    op.drop_table('usage')
    op.create_table('usage',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('operation', sa.String(length=128), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('calls', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('successes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failures', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cached', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rate_limited', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost', sa.Numeric(precision=14, scale=6), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_usage_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage')),
    sa.UniqueConstraint('tenant_id', 'integration_id', 'operation', 'day', name=op.f('uq_usage_tenant_id_integration_id_operation_day'))
    )
    op.create_index(op.f('ix_usage_tenant_id_day'), 'usage', ['tenant_id', 'day'], unique=False)
    op.create_table('usage_rollup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rolled_below', Xid8(), server_default=sa.text("'0'::xid8"), nullable=False),
    sa.Column('legacy_counted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('rolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('id = 1', name=op.f('ck_usage_rollup_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_rollup'))
    )
    op.execute("INSERT INTO usage_rollup (id) VALUES (1)")
    op.create_table('budget_alerts',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('budget', sa.Numeric(precision=14, scale=6), nullable=False),
    sa.Column('cost', sa.Numeric(precision=14, scale=6), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_budget_alerts_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_alerts')),
    sa.UniqueConstraint('integration_id', 'month', name=op.f('uq_budget_alerts_integration_id_month'))
    )


def downgrade() -> None:
    op.drop_table('budget_alerts')
    op.drop_table('usage_rollup')
    op.drop_index(op.f('ix_usage_tenant_id_day'), table_name='usage')
    op.drop_table('usage')
    op.create_table('usage',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failures', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost', sa.Numeric(precision=14, scale=6), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("period IN ('hour', 'day')", name=op.f('ck_usage_period')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_usage_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage')),
    sa.UniqueConstraint('tenant_id', 'integration_id', 'period', 'period_start', name=op.f('uq_usage_tenant_id_integration_id_period_period_start'))
    )
