"""Beat's health checks of every active integration (DESIGN §8).

Each integration is probed through its adapter's health request and gets a
``health_status``: ``healthy`` (2xx/3xx), ``degraded`` (it answered with an error
status: 4xx, 5xx) or ``down`` (no answer: refused, timed out, unreachable, or the
probe could not be authenticated). The probe's latency and error are stored with
it for ``hub health --detailed``. Each change is announced once:
``integration.health.degraded`` when it becomes degraded or down (``data.status``
says which), ``integration.health.recovered`` when it is healthy again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import select

from hub.calls import breaker, integrations, probe
from hub.platform import events
from hub.platform.models import Integration
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

log = logging.getLogger(__name__)

ERROR_LIMIT = 500


def classify(report: dict[str, Any]) -> str:
    """``healthy``, ``degraded`` or ``down`` for a probe report."""
    if report["ok"]:
        return "healthy"
    return "degraded" if report["status_code"] is not None else "down"


def check_one(services: Services, tenant: str, name: str) -> dict[str, Any]:
    """Probe one integration, store its health status, latency and error, announce a
    change; return the probe report (with ``health_status``). Raises NotFound."""
    report = probe.probe(services, tenant, name)
    status = classify(report)
    with services.sessions() as session, session.begin():
        row = integrations.get(session, tenant, name, lock=True)
        previous, row.health_status = row.health_status, status
        row.last_health_check_at = utcnow()
        row.last_health_latency_ms = report["duration_ms"]
        row.last_health_error = (report["error"] or "")[:ERROR_LIMIT] or None
    report["health_status"] = status
    event = _transition(previous, status)
    if event is not None:
        events.publish(services.events, event, tenant, {
            "integration": name, "status": status, "previous": previous,
            "status_code": report["status_code"], "error": report["error"]})
    return report


def _transition(previous: str, status: str) -> str | None:
    if previous == status or (previous == "unknown" and status == "healthy"):
        return None  # no change, or a first check that found it fine
    return "health.recovered" if status == "healthy" else "health.degraded"


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


#: hub_integration_health's value per status (no sample for ``unknown``: never checked).
HEALTH_VALUES = {"healthy": 1.0, "degraded": 0.5, "down": 0.0}
#: hub_breaker_state's value per breaker state.
BREAKER_VALUES = {"closed": 0.0, "half-open": 0.5, "open": 1.0}


def detailed(services: Services, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every integration (of ``tenant``, or of all) with its status, last health check,
    its latency and error, and its circuit breaker's state (``unknown`` when Redis does
    not answer), by tenant and name: ``hub health --detailed`` and /metrics."""
    with services.sessions() as session:
        rows = integrations.list_for_tenant(session, tenant)
    try:
        breakers = breaker.peek_states(services, rows)
    except redis.RedisError as exc:
        log.warning("breaker states not read: Redis unavailable (%s)", exc)
        breakers = {}
    return [{"tenant": row.tenant_id, "integration": row.name, "status": row.status,
             "health_status": row.health_status,
             "last_check_at": row.last_health_check_at.isoformat()
             if row.last_health_check_at else None,
             "latency_ms": row.last_health_latency_ms, "error": row.last_health_error,
             "breaker": breakers.get(str(row.id), "unknown")} for row in rows]
