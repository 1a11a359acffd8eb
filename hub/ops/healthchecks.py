"""Beat's health checks of every active integration (DESIGN §8).

Each integration is probed through its adapter's health request. A change of
``health_status`` is recorded and announced once: ``integration.health.degraded``
when it stops answering, ``integration.health.recovered`` when it answers again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.calls import probe
from hub.platform import events
from hub.platform.models import Integration
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

TRANSITION_EVENTS = {"degraded": "health.degraded", "healthy": "health.recovered"}


def check_one(services: Services, tenant: str, name: str) -> dict[str, Any]:
    """Probe one integration, store its health status, announce a change; return the probe."""
    report = probe.probe(services, tenant, name)
    status = "healthy" if report["ok"] else "degraded"
    with services.sessions() as session, session.begin():
        row = session.scalars(select(Integration).where(
            Integration.tenant_id == tenant, Integration.name == name).with_for_update()).one()
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
    """Probe every active integration of every tenant; return their reports."""
    with services.sessions() as session:
        targets = session.execute(select(Integration.tenant_id, Integration.name)
                                  .where(Integration.status == "active")
                                  .order_by(Integration.tenant_id, Integration.name)).all()
    return [check_one(services, tenant, name) for tenant, name in targets]
