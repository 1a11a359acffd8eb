"""dead_letters: how an operator reconciled an OUTCOME_UNKNOWN letter (hub dlq resolve)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 12:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: the running release neither reads nor writes them. The check
    # holds for every new row; it is added NOT VALID because every existing row holds
    # NULL (which passes), so scanning the table under ACCESS EXCLUSIVE would prove
    # nothing.
    op.add_column('dead_letters', sa.Column('resolution', sa.String(length=16), nullable=True))
    op.add_column('dead_letters', sa.Column('resolved_at', sa.DateTime(timezone=True),
                                            nullable=True))
    op.add_column('dead_letters', sa.Column('resolved_by', sa.String(length=128),
                                            nullable=True))
    op.add_column('dead_letters', sa.Column('resolution_note', sa.Text(), nullable=True))
    op.execute("ALTER TABLE dead_letters ADD CONSTRAINT ck_dead_letters_resolution "
               "CHECK (resolution IN ('succeeded', 'failed')) NOT VALID")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_dead_letters_resolution'), 'dead_letters', type_='check')
    op.drop_column('dead_letters', 'resolution_note')
    op.drop_column('dead_letters', 'resolved_by')
    op.drop_column('dead_letters', 'resolved_at')
    op.drop_column('dead_letters', 'resolution')
