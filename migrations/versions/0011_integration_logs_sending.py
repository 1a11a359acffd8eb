"""integration_logs outcomes 'sending' (written before a write leaves) and 'outcome_unknown'

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

OLD = ('success', 'failed', 'cached', 'rate_limited', 'circuit_open', 'dead_lettered')
NEW = (*OLD, 'sending', 'outcome_unknown')


def _check(values: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    # integration_logs is the busiest table: swap the CHECK as NOT VALID (a brief lock,
    # no scan), then validate it apart (SHARE UPDATE EXCLUSIVE: writers carry on). The
    # running release writes only old outcomes, which the wider check accepts.
    op.drop_constraint(op.f('ck_integration_logs_outcome'), 'integration_logs', type_='check')
    op.create_check_constraint(op.f('ck_integration_logs_outcome'), 'integration_logs',
                               _check(NEW), postgresql_not_valid=True)
    with op.get_context().autocommit_block():
        op.execute('ALTER TABLE integration_logs VALIDATE CONSTRAINT ck_integration_logs_outcome')


def downgrade() -> None:
    op.execute("UPDATE integration_logs SET outcome = 'failed' "
               "WHERE outcome IN ('sending', 'outcome_unknown')")
    op.drop_constraint(op.f('ck_integration_logs_outcome'), 'integration_logs', type_='check')
    op.create_check_constraint(op.f('ck_integration_logs_outcome'), 'integration_logs',
                               _check(OLD))
