"""Dead letters: work whose retries are exhausted, kept as queryable rows (DESIGN §4).

A dead letter keeps the original task name and JSON kwargs, so a replay sends
exactly what the first attempt got.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from hub.models import DEAD_LETTER_ORIGINS, DeadLetter
from hub.scheduler import utcnow

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


def record_and_announce(services: Any, **fields: Any) -> uuid.UUID:
    """:func:`record` in a transaction of its own, then publish
    ``integration.dead_letter.added`` (fail-open). Returns the dead letter's id.

    ``services`` is a :class:`hub.services.Services`; ``fields`` are :func:`record`'s.
    """
    from hub import events

    with services.sessions() as session, session.begin():
        row = record(session, **fields)
        row_id = row.id
    events.publish(services.redis, "dead_letter.added", fields.get("tenant_id"),
                   {"id": str(row_id), "task_name": fields.get("task_name"),
                    "origin": fields.get("origin"), "integration": fields.get("integration"),
                    "error_code": fields.get("error_code"), "task_id": fields.get("task_id")})
    return row_id
