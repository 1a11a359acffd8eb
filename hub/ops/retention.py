"""Retention: old audit rows, expired cache rows, sent schedule rows and expired OAuth
connect states, deleted in short batches so no table is locked for long (DESIGN §8).

Audit rows are deleted only once the usage roll-up has counted them (it runs
first; a row it has not reached yet stays, whatever its age), so usage and cost
outlive the audit trail they come from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from hub.calls import cache
from hub.calls.auth import connect
from hub.ops import usage
from hub.platform.db import allow_long_statements
from hub.platform.models import IntegrationLog, ScheduledTask
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

DEFAULT_BATCH = 5000
#: Sent or cancelled scheduled_tasks rows are only history once their task ran.
SCHEDULED_KEEP = timedelta(days=7)


def delete_in_batches(factory: sessionmaker[Session], model: Any, *where: Any,
                      batch: int = DEFAULT_BATCH,
                      statement_timeout: float | None = None) -> int:
    """Delete rows of ``model`` matching ``where``, ``batch`` per transaction; return the count.

    SKIP LOCKED: rows a worker holds are left for the next run rather than waited for.
    ``statement_timeout`` (seconds, 0: none) replaces the engine's statement bound in
    these transactions (HUB_DB_MAINTENANCE_STATEMENT_TIMEOUT).
    """
    total = 0
    while True:
        ids = (select(model.id).where(*where).limit(batch)
               .with_for_update(skip_locked=True).scalar_subquery())
        with factory() as session, session.begin():
            if statement_timeout is not None:
                allow_long_statements(session, statement_timeout)
            result = cast("CursorResult[Any]",
                          session.execute(delete(model).where(model.id.in_(ids))))
            deleted = int(result.rowcount or 0)
        total += deleted
        if deleted < batch:
            return total


def run(services: Services, *, now: datetime | None = None,
        batch: int = DEFAULT_BATCH) -> dict[str, int]:
    """Roll usage up, then apply every retention rule; return rows deleted per table."""
    now = now or utcnow()
    usage.rollup(services)
    log_cutoff = now - timedelta(days=services.settings.log_retention_days)
    # Expired rows that still carry an ETag stay a while for revalidation.
    cache_cutoff = now - timedelta(seconds=cache.STALE_KEEP_SECONDS)
    long = services.settings.db_maintenance_statement_timeout
    return {
        "integration_logs": delete_in_batches(
            services.sessions, IntegrationLog, IntegrationLog.started_at < log_cutoff,
            usage.rolled_below_clause(), batch=batch, statement_timeout=long),
        "cache_entries": cache.expire_before(services, cache_cutoff),
        "oauth_states": connect.expire_states(services),
        "scheduled_tasks": delete_in_batches(
            services.sessions, ScheduledTask, ScheduledTask.status != "pending",
            ScheduledTask.created_at < now - SCHEDULED_KEEP, batch=batch,
            statement_timeout=long),
    }
