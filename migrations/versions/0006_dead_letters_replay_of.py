"""a dead letter whose replay failed again links to the letter it replayed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without default: no table rewrite; the running release never
    # reads it. The indexes find a replay's letter by its task id and the letters a
    # replay produced; CONCURRENTLY so recording dead letters never waits on them.
    op.add_column('dead_letters', sa.Column('replay_of', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_dead_letters_replay_of_dead_letters'), 'dead_letters',
                          'dead_letters', ['replay_of'], ['id'], ondelete='SET NULL')
    with op.get_context().autocommit_block():
        for column in ('replay_task_id', 'replay_of'):
            op.create_index(op.f(f'ix_dead_letters_{column}'), 'dead_letters', [column],
                            unique=False, postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for column in ('replay_of', 'replay_task_id'):
            op.drop_index(op.f(f'ix_dead_letters_{column}'), table_name='dead_letters',
                          postgresql_concurrently=True, if_exists=True)
    op.drop_constraint(op.f('fk_dead_letters_replay_of_dead_letters'), 'dead_letters',
                       type_='foreignkey')
    op.drop_column('dead_letters', 'replay_of')
