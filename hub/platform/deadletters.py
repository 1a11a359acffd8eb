"""Dead letters: work whose retries are exhausted, kept as queryable rows (DESIGN §4).

Every domain records its own (calls, webhook events, deliveries, poison
messages) through this module; operators list and replay them with
:mod:`hub.ops.dlq`. A dead letter keeps the original task name and JSON kwargs,
so a replay sends exactly what the first attempt got.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from hub.platform import events
from hub.platform.db import on_commit
from hub.platform.models import DEAD_LETTER_ORIGINS, DeadLetter
from hub.platform.scheduler import utcnow

TRACEBACK_LIMIT = 4000


def record(session: Session, *, origin: str, task_name: str, kwargs: dict[str, Any],
           tenant_id: str | None, error_code: str | None, error: str | None,
           attempts: int, task_id: str | None = None, integration: str | None = None,
           endpoint_id: uuid.UUID | None = None, traceback: str | None = None,
           args: list[Any] | None = None) -> DeadLetter:
    """Add a dead letter to ``session`` (flushed, not committed) and return it.

    ``kwargs``, ``error`` and ``traceback`` must already be free of secrets: task
    kwargs carry ids and plain JSON only (CONVENTIONS habit 3). Raises ValueError
    for an unknown origin.
    """
    if origin not in DEAD_LETTER_ORIGINS:
        raise ValueError(f"unknown dead-letter origin {origin!r}")
    now = utcnow()
    row = DeadLetter(
        origin=origin, task_name=task_name, task_id=task_id, args=args or [], kwargs=kwargs,
        tenant_id=tenant_id, integration=integration, endpoint_id=endpoint_id,
        error_code=error_code, error=error,
        traceback=traceback[-TRACEBACK_LIMIT:] if traceback else None,
        attempts=attempts, first_failed_at=now, last_failed_at=now,
    )
    session.add(row)
    session.flush()
    return row


def announcement(row: DeadLetter) -> dict[str, Any]:
    """The ``integration.dead_letter.added`` payload of ``row`` (ids and codes, no kwargs)."""
    return {"id": str(row.id), "task_name": row.task_name, "origin": row.origin,
            "integration": row.integration, "error_code": row.error_code,
            "task_id": row.task_id, "endpoint_id": str(row.endpoint_id) if row.endpoint_id
            else None, "ids": {k: v for k, v in row.kwargs.items() if k.endswith("_id")}}


def announce_after_commit(session: Session, publisher: events.EventBus,
                          row: DeadLetter) -> None:
    """Publish ``integration.dead_letter.added`` for ``row`` once ``session`` commits."""
    payload, tenant = announcement(row), row.tenant_id
    on_commit(session, lambda: events.publish(publisher, "dead_letter.added", tenant, payload))


def record_and_announce(services: Any, **fields: Any) -> uuid.UUID:
    """:func:`record` in a transaction of its own, announced once committed.
    Returns the dead letter's id.

    ``services`` is a :class:`hub.platform.services.Services`; ``fields`` are :func:`record`'s.
    """
    with services.sessions() as session, session.begin():
        row = record(session, **fields)
        announce_after_commit(session, services.events, row)
    return row.id
