"""``hub integrations delete``: refuse while calls are queued for the integration.

Queued means waiting in the broker's call queues (``calls``, the default queue and
``replay``; readable on a Redis broker only), taken by a worker and not yet
acknowledged (a retry waiting for its countdown, a prefetched or running call), or
waiting in PostgreSQL for a retry (``scheduled_tasks``). With ``force`` the integration is deleted anyway: its
waiting retries are cancelled, and queued messages fail with NOT_FOUND when a
worker takes them. Either way its audit rows, usage and dead letters stay
(:func:`hub.calls.integrations.retire` keeps its row, marked deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, or_, select, update
from sqlalchemy.orm import Session

from hub.calls import integrations
from hub.ops import queues
from hub.platform.errors import Conflict
from hub.platform.models import ScheduledTask
from hub.platform.services import Services

#: Queues a call for an integration can wait in (DESIGN §4).
CALL_QUEUES = ("calls", "celery", "replay")


@dataclass(frozen=True)
class QueuedCalls:
    """Calls waiting for an integration: in the broker (None: the broker cannot be
    read, e.g. RabbitMQ) and as retries stored in PostgreSQL."""

    broker: int | None
    scheduled: int

    @property
    def total(self) -> int:
        return (self.broker or 0) + self.scheduled


def _scheduled_calls(tenant: str, name: str) -> Select[Any]:
    return select(ScheduledTask.id).where(
        ScheduledTask.status == "pending",
        ScheduledTask.kwargs["tenant"].astext == tenant,
        ScheduledTask.kwargs["integration"].astext == name,
        or_(ScheduledTask.task_name == "hub.call", ScheduledTask.task_name.like("hub.%.%")))


def queued_calls(services: Services, session: Session, tenant: str, name: str) -> QueuedCalls:
    """Count the calls waiting for ``tenant``'s integration ``name``."""
    scheduled = session.scalar(select(func.count()).select_from(
        _scheduled_calls(tenant, name).subquery())) or 0
    broker = queues.broker_client(services.settings)
    if broker is None:
        return QueuedCalls(None, int(scheduled))
    try:
        names = [services.settings.queue(q) for q in CALL_QUEUES]
        return QueuedCalls(queues.count_calls_for(broker, names, tenant, name), int(scheduled))
    finally:
        broker.close()


def delete_integration(services: Services, tenant: str, name: str, *,
                       force: bool = False) -> dict[str, Any]:
    """Delete ``tenant``'s integration ``name`` unless calls are queued for it.

    Returns what was done (``queued`` counts, ``cancelled_retries``). Raises NotFound,
    and Conflict when calls are queued and ``force`` is false (nothing is changed).
    """
    with services.sessions() as session, session.begin():
        row = integrations.get(session, tenant, name, lock=True)
        waiting = queued_calls(services, session, tenant, name)
        if waiting.total and not force:
            raise Conflict(
                f"{waiting.total} call(s) are queued for integration {tenant}/{name} "
                f"({waiting.broker or 0} in the broker, {waiting.scheduled} retries waiting); "
                "wait for them or delete with --force (they then fail with NOT_FOUND)",
                details={"broker": waiting.broker, "scheduled": waiting.scheduled})
        cancelled = cast("CursorResult[Any]", session.execute(
            update(ScheduledTask).where(ScheduledTask.id.in_(_scheduled_calls(tenant, name)))
            .values(status="cancelled", reason="integration deleted"))).rowcount
        integrations.retire(session, tenant, name)
        return {"id": str(row.id), "tenant": tenant, "name": name, "deleted": True,
                "queued": {"broker": waiting.broker, "scheduled": waiting.scheduled},
                "cancelled_retries": int(cancelled or 0)}
