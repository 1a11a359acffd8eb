"""integration_logs record their transaction id (xid8) for the usage roll-up

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00
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

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added without a default (no table rewrite: a volatile default would rewrite
    # every row under an exclusive lock), then the default for new rows only. Rows
    # already there stay NULL and are counted once by the first roll-up.
    op.add_column('integration_logs', sa.Column('txid', Xid8(), nullable=True))
    op.alter_column('integration_logs', 'txid', server_default=sa.text('pg_current_xact_id()'))
    # CONCURRENTLY: integration_logs is the busiest table; never block its writers.
    with op.get_context().autocommit_block():
        op.create_index(op.f('ix_integration_logs_txid'), 'integration_logs', ['txid'],
                        unique=False, postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(op.f('ix_integration_logs_txid'), table_name='integration_logs',
                      postgresql_concurrently=True, if_exists=True)
    op.drop_column('integration_logs', 'txid')
