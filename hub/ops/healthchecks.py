"""Beat's health checks of every active integration (DESIGN §8).

Each integration is probed through its adapter's health request. A change of
``health_status`` is recorded and announced once: ``integration.health.degraded``
when it stops answering, ``integration.health.recovered`` when it answers again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from hub.calls import integrations, probe
from hub.platform import events
from hub.platform.models import Integration
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

log = logging.getLogger(__name__)

TRANSITION_EVENTS = {"degraded": "health.degraded", "healthy": "health.recovered"}


def check_one(services: Services, tenant: str, name: str) -> dict[str, Any]:
    """Probe one integration, store its health status, announce a change; return the probe."""
    report = probe.probe(services, tenant, name)
    status = "healthy" if report["ok"] else "degraded"
    with services.sessions() as session, session.begin():
        row = integrations.get(session, tenant, name, lock=True)
        previous, row.health_status = row.health_status, status
        row.last_health_check_at = utcnow()
    report["health_status"] = status
    # "unknown" -> "healthy" is a first check, not a recovery.
    if previous != status and not (previous == "unknown" and status == "healthy"):
        events.publish(services.events, TRANSITION_EVENTS[status], tenant, {
            "integration": name, "previous": previous, "status_code": report["status_code"],
            "error": report["error"]})
    return report


def check_all(services: Services) -> list[dict[str, Any]]:
    """Probe every active integration of every tenant; return their reports.

    One integration's failure (its adapter uninstalled, a bug, a row deleted meanwhile)
    is logged and reported, never stops the checks of the others.
    """
    with services.sessions() as session:
        targets = session.execute(select(Integration.tenant_id, Integration.name)
                                  .where(Integration.status == "active")
                                  .order_by(Integration.tenant_id, Integration.name)).all()
    return [_check_isolated(services, tenant, name) for tenant, name in targets]


def _check_isolated(services: Services, tenant: str, name: str) -> dict[str, Any]:
    try:
        return check_one(services, tenant, name)
    except Exception as exc:  # noqa: BLE001 - the next integration is checked regardless
        log.error("health check of %s/%s failed: %s: %s", tenant, name,
                  type(exc).__name__, exc)
        return {"integration": name, "tenant": tenant, "ok": False, "status_code": None,
                "duration_ms": None, "error": f"{type(exc).__name__}: {exc}"[:300],
                "health_status": None}
