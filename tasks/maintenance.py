"""Maintenance tasks run by beat, and the ``hub.ping`` smoke task."""

from __future__ import annotations

import socket
from typing import Any

from celery.signals import task_success

from hub.ops import healthchecks, maintenance, retention, usage
from hub.platform import scheduler
from tasks.app import app, services


@task_success.connect
def stamp_maintenance(sender: Any = None, **_: Any) -> None:
    """Beat's pulse: stamp each maintenance task's success (hub.ops.maintenance)."""
    name = str(getattr(sender, "name", ""))
    if name.startswith(maintenance.TASK_PREFIX):
        maintenance.record_success(services(), name)


@app.task(name="hub.ping")
def ping() -> dict[str, str]:
    """Smoke test: proves a worker consumes and stores a result."""
    return {"pong": "ok", "worker": socket.gethostname()}


@app.task(name="hub.maintenance.enqueue_due", ignore_result=True)
def enqueue_due() -> int:
    """Send scheduled tasks whose wait (kept in PostgreSQL) is over."""
    svc = services()
    return scheduler.enqueue_due(svc.sessions, svc.dispatcher)


@app.task(name="hub.maintenance.retention", ignore_result=True)
def apply_retention() -> dict[str, int]:
    """Delete audit rows past HUB_LOG_RETENTION_DAYS, expired cache rows, old schedule rows."""
    return retention.run(services())


@app.task(name="hub.maintenance.health_checks", ignore_result=True)
def health_checks() -> int:
    """Probe every active integration; status changes emit health.degraded/recovered."""
    return len(healthchecks.check_all(services()))


@app.task(name="hub.maintenance.usage_rollup", ignore_result=True)
def usage_rollup() -> dict[str, int]:
    """Add the audit rows written since the last run to usage; announce budgets crossed."""
    result = usage.rollup(services())
    return {"groups": result.groups, "budget_alerts": result.budget_alerts}
