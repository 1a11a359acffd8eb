"""integrations record the adapter version and param schemas they were created with

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: no table rewrite. Rows of the release still running stay
    # NULL ("unrecorded") until `hub integrations upgrade` records them.
    op.add_column('integrations', sa.Column('adapter_version', sa.String(length=32),
                                            nullable=True))
    op.add_column('integrations', sa.Column('adapter_schema',
                                            postgresql.JSONB(astext_type=sa.Text()),
                                            nullable=True))


def downgrade() -> None:
    op.drop_column('integrations', 'adapter_schema')
    op.drop_column('integrations', 'adapter_version')
