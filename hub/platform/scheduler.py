"""Waits too long for a broker countdown, kept in PostgreSQL (DESIGN §4).

A Redis broker redelivers a message whose countdown outlives its visibility
timeout (celery#2599, kombu#337), so a retry due in an hour is a row in
``scheduled_tasks``; beat's ``hub.maintenance.enqueue_due`` sends rows as they
fall due. Short waits may still use a countdown: :func:`defer` picks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.config import Settings
from hub.platform.dispatch import Dispatcher
from hub.platform.models import ScheduledTask

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def schedule(session: Session, name: str, kwargs: dict[str, Any], *, due_at: datetime,
             queue: str | None = None, tenant_id: str | None = None,
             reason: str | None = None, task_id: str | None = None) -> ScheduledTask:
    """Store a task to be sent at ``due_at``; it is part of ``session``'s transaction.

    With ``task_id`` the task is sent under that id (a retry keeps its task's id, so
    the caller's AsyncResult sees the final outcome).
    """
    row = ScheduledTask(task_name=name, kwargs=kwargs, due_at=due_at, queue=queue,
                        tenant_id=tenant_id, reason=reason, task_id=task_id)
    session.add(row)
    session.flush()
    return row


def defer(session: Session, dispatcher: Dispatcher, settings: Settings, name: str,
          kwargs: dict[str, Any], *, delay: float, queue: str | None = None,
          tenant_id: str | None = None, reason: str | None = None) -> str | None:
    """Run ``name`` after ``delay`` seconds, by countdown if short, else via PostgreSQL.

    Returns the task id when sent by countdown, None when stored for beat.
    """
    if delay <= settings.max_countdown:
        return dispatcher.send(name, kwargs, queue=queue, countdown=max(0.0, delay))
    schedule(session, name, kwargs, due_at=utcnow() + timedelta(seconds=delay), queue=queue,
             tenant_id=tenant_id, reason=reason)
    return None


def enqueue_due(factory: sessionmaker[Session], dispatcher: Dispatcher, *,
                limit: int = 500) -> int:
    """Send every scheduled task whose time has come; return how many were sent.

    Rows are claimed with SKIP LOCKED so two beats (or a beat and an operator)
    never send one row twice. The row is marked before the send commits: if the
    send fails the transaction rolls back and the row is tried again next tick.
    """
    sent = 0
    with factory() as session, session.begin():
        rows = session.scalars(
            select(ScheduledTask)
            .where(ScheduledTask.status == "pending", ScheduledTask.due_at <= utcnow())
            .order_by(ScheduledTask.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.task_id = dispatcher.send(row.task_name, dict(row.kwargs), queue=row.queue,
                                          task_id=row.task_id)
            row.status = "enqueued"
            row.enqueued_at = utcnow()
            sent += 1
    return sent
