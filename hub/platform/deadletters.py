"""Dead letters: work whose retries are exhausted, kept as queryable rows (DESIGN §4).

Every domain records its own (calls, webhook events, deliveries, poison
messages) through this module; operators list and replay them with
:mod:`hub.ops.dlq`. A dead letter keeps the original task name and JSON kwargs,
so a replay sends exactly what the first attempt got.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.platform import events, pgtext
from hub.platform.db import on_commit
from hub.platform.models import DEAD_LETTER_ORIGINS, DeadLetter
from hub.platform.scheduler import utcnow

TRACEBACK_LIMIT = 4000
#: Published (besides ``dead_letter.added``) for work whose failure a person must
#: hear about at once (seed 003: "notify supervisor"), e.g. a transaction commit.
ALERT_EVENT = "supervisor.alert"
SANITISED_NOTE = (" [stored with characters PostgreSQL refuses replaced by U+FFFD and "
                  "over-long identifiers cut]")


def record(session: Session, *, origin: str, task_name: str, kwargs: dict[str, Any],
           tenant_id: str | None, error_code: str | None, error: str | None,
           attempts: int, task_id: str | None = None, integration: str | None = None,
           endpoint_id: uuid.UUID | None = None, traceback: str | None = None,
           args: list[Any] | None = None, replay_of: uuid.UUID | None = None) -> DeadLetter:
    """Add a dead letter to ``session`` (flushed, not committed) and return it.

    ``kwargs``, ``error`` and ``traceback`` must already be free of secrets: task
    kwargs carry ids and plain JSON only (CONVENTIONS habit 3). Whatever they hold,
    the letter is stored: characters PostgreSQL refuses (NUL, lone surrogates) are
    replaced by U+FFFD and over-long identifiers cut to their column, the rest kept
    as it is, and the error says so (issue 9 item 7: the work that failed on bad
    input must not be lost a second time). A letter whose task is the replay of an
    earlier letter (``hub dlq replay`` recorded its task id there) is linked to it
    (``replay_of``, found by the task id when not given). Raises ValueError for an
    unknown origin.
    """
    if origin not in DEAD_LETTER_ORIGINS:
        raise ValueError(f"unknown dead-letter origin {origin!r}")
    now = utcnow()
    fields = _storable(task_name=task_name, task_id=task_id, args=args or [], kwargs=kwargs,
                       tenant_id=tenant_id, integration=integration, error_code=error_code,
                       error=error, traceback=traceback[-TRACEBACK_LIMIT:] if traceback
                       else None)
    if replay_of is None and task_id is not None:
        replay_of = replayed_by(session, task_id, fields["tenant_id"])
    row = DeadLetter(origin=origin, endpoint_id=endpoint_id, attempts=attempts,
                     first_failed_at=now, last_failed_at=now, replay_of=replay_of, **fields)
    session.add(row)
    session.flush()
    return row


def replayed_by(session: Session, task_id: str, tenant_id: str | None) -> uuid.UUID | None:
    """The id of the tenant's dead letter that ``hub dlq replay`` sent as task
    ``task_id``, if any."""
    return session.scalar(select(DeadLetter.id).where(
        DeadLetter.replay_task_id == task_id,
        DeadLetter.tenant_id.is_not_distinct_from(tenant_id))
        .order_by(DeadLetter.replayed_at.desc()).limit(1))


def _storable(**fields: Any) -> dict[str, Any]:
    """``fields`` as PostgreSQL can store them (see :func:`record`)."""
    stored = {name: pgtext.sanitise(value) for name, value in fields.items()}
    for name, value in stored.items():
        limit = getattr(getattr(DeadLetter, name).type, "length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            stored[name] = value[:limit]
    if stored != fields:
        stored["error"] = (stored["error"] or "") + SANITISED_NOTE
    return stored


def announcement(row: DeadLetter) -> dict[str, Any]:
    """The ``integration.dead_letter.added`` payload of ``row`` (ids and codes, no kwargs)."""
    return {"id": str(row.id), "task_name": row.task_name, "origin": row.origin,
            "integration": row.integration, "error_code": row.error_code,
            "task_id": row.task_id, "endpoint_id": str(row.endpoint_id) if row.endpoint_id
            else None, "ids": {k: v for k, v in row.kwargs.items() if k.endswith("_id")}}


def alert_payload(row: DeadLetter) -> dict[str, Any]:
    """The ``integration.supervisor.alert`` payload of ``row``: what failed, why, and the
    dead letter to look at; ``ids`` are the params named ``*_id`` (of hub.call's
    ``params`` too), never the other values."""
    kwargs = row.kwargs
    nested = kwargs.get("params")
    params: dict[str, Any] = nested if isinstance(nested, dict) else {}
    ids = {k: v for k, v in {**kwargs, **params}.items() if k.endswith("_id")}
    operation = kwargs.get("operation") or row.task_name.rsplit(".", 1)[-1]
    return {**announcement(row), "operation": operation, "error": row.error,
            "attempts": row.attempts, "dead_letter_id": str(row.id), "ids": ids}


def announce_after_commit(session: Session, publisher: events.EventBus,
                          row: DeadLetter, *, alert: bool = False) -> None:
    """Publish ``integration.dead_letter.added`` for ``row`` once ``session`` commits,
    and ``integration.supervisor.alert`` too when ``alert``."""
    payload, tenant = announcement(row), row.tenant_id
    alerting = alert_payload(row) if alert else None

    def publish() -> None:
        events.publish(publisher, "dead_letter.added", tenant, payload)
        if alerting is not None:
            events.publish(publisher, ALERT_EVENT, tenant, alerting)

    on_commit(session, publish)


def record_and_announce(services: Any, *, alert: bool = False, **fields: Any) -> uuid.UUID:
    """:func:`record` in a transaction of its own, announced once committed (with a
    supervisor alert when ``alert``). Returns the dead letter's id.

    ``services`` is a :class:`hub.platform.services.Services`; ``fields`` are :func:`record`'s.
    """
    with services.sessions() as session, session.begin():
        row = record(session, **fields)
        announce_after_commit(session, services.events, row, alert=alert)
    return row.id
