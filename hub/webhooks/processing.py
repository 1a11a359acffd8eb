"""Processing of recorded webhook events: the ``hub.webhooks.process`` task's core.

One event is processed in one transaction that holds its row lock
(``SELECT ... FOR UPDATE SKIP LOCKED``): a second worker, or a redelivered
message, finds the row locked or no longer pending and does nothing, and a
worker that dies mid-way leaves the row pending for the sweeper. Inside the
transaction: handlers run, deliveries are created for matching subscriptions,
the row is marked processed. After the commit: cached answers named by the
handlers are invalidated, the events are published and the deliveries enqueued.

A failure rolls that transaction back and records the attempt in a new one:
``failed`` with an exponential ``next_attempt_at`` (beat's :func:`sweep` sends
it again when due) or, after ``HUB_WEBHOOK_MAX_ATTEMPTS``, ``dead`` with a dead
letter.
"""

from __future__ import annotations

import logging
import random
import traceback
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.calls import cache
from hub.deliveries import sending
from hub.platform import deadletters, events, metrics
from hub.platform.dispatch import send_after_commit
from hub.platform.errors import HubError, NotFound, ValidationError
from hub.platform.inbound import InboundEvent, inbound_event
from hub.platform.models import WebhookEvent
from hub.platform.scheduler import utcnow
from hub.platform.services import Services
from hub.webhooks.handlers import (
    CacheInvalidation,
    HandlerContext,
    HandlerRegistry,
    registry,
)

log = logging.getLogger(__name__)

PROCESS_TASK = "hub.webhooks.process"
#: ``dead`` too: nothing enqueues a dead event except a dead-letter replay
#: (``hub dlq replay``), which must run it once more.
CLAIMABLE = ("pending", "failed", "dead")
MAX_RETRY_WAIT = 3600.0
ERROR_LIMIT = 2000


@dataclass(frozen=True)
class ProcessOutcome:
    """What one :func:`process_event` call did: processed, skipped, failed or dead."""

    event_id: str
    status: str
    deliveries: int = 0
    error: str | None = None


def _event_key(event_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(event_id))
    except ValueError:
        raise ValidationError(f"not a webhook event id: {event_id!r}") from None


def _claim(session: Session, key: uuid.UUID) -> WebhookEvent | None:
    return session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.id == key, WebhookEvent.status.in_(CLAIMABLE))
        .with_for_update(skip_locked=True)).one_or_none()


def _run_handlers(handlers: HandlerRegistry, inbound: InboundEvent) -> HandlerContext:
    ctx = HandlerContext(inbound.tenant)
    for handler in handlers.handlers_for(inbound.source, inbound.event_type):
        handler(inbound, ctx)
    return ctx


def process_event(services: Services, event_id: str | uuid.UUID, *,
                  handlers: HandlerRegistry = registry) -> ProcessOutcome:
    """Process one recorded event at most once at a time, and once successfully.

    An event that is already processed, or being processed by another worker,
    is skipped; a dead one runs again (only a dead-letter replay sends it).
    Handler and fan-out failures are recorded on the row (retry or dead letter)
    and reported in the outcome, not raised. Raises ValidationError for a
    malformed id; database errors propagate (the row stays as it was and the
    sweeper retries it).
    """
    key = _event_key(event_id)
    try:
        with services.sessions() as session, session.begin():
            row = _claim(session, key)
            if row is None:
                metrics.WEBHOOK_EVENTS_PROCESSED.labels("unknown", "skipped").inc()
                return ProcessOutcome(str(key), "skipped")
            inbound = inbound_event(row)
            ctx = _run_handlers(handlers, inbound)
            created = sending.create_for_event(session, services, row)
            _mark_processed(row)
    except Exception as exc:  # noqa: BLE001 - any handler error fails the event, not the worker
        return _record_failure(services, key, exc)
    _after_commit(services, inbound, ctx, created)
    metrics.WEBHOOK_EVENTS_PROCESSED.labels(inbound.source, "processed").inc()
    return ProcessOutcome(str(key), "processed", deliveries=created)


def _mark_processed(row: WebhookEvent) -> None:
    row.status = "processed"
    row.attempts += 1
    row.processed_at = utcnow()
    row.next_attempt_at = None
    row.last_error = None


def event_data(inbound: InboundEvent, deliveries_created: int) -> dict[str, Any]:
    """The ``webhook.received`` event data: the parsed payload, no headers, no secrets."""
    return {
        "event_id": str(inbound.id), "source": inbound.source, "event_type": inbound.event_type,
        "external_id": inbound.external_id, "received_at": inbound.received_at.isoformat(),
        "deliveries": deliveries_created, "payload": inbound.payload,
    }


def _after_commit(services: Services, inbound: InboundEvent, ctx: HandlerContext,
                  created: int) -> None:
    for wanted in ctx.invalidations:
        _invalidate(services, inbound.tenant, wanted)
    events.publish(services.events, "webhook.received", inbound.tenant,
                   event_data(inbound, created),
                   extra_channels=(f"integration.webhook.{inbound.qualified_type}",))


def _invalidate(services: Services, tenant: str, wanted: CacheInvalidation) -> None:
    # Fails open: the event is processed and committed; a stale cache entry
    # expires on its own, while raising here would re-run the whole event.
    try:
        removed = cache.invalidate(services, tenant, wanted.integration, wanted.operation,
                                   params=wanted.params)
    except (HubError, ValueError, SQLAlchemyError):
        log.warning("cache invalidation %s for %s failed", wanted, tenant, exc_info=True)
        return
    log.info("webhook invalidated %s cached answers of %s/%s", removed, tenant,
             wanted.integration)


# --- failures ---------------------------------------------------------------------

def retry_wait(base: float, attempts: int) -> float:
    """Exponential backoff with +-20 % jitter after ``attempts`` failed attempts (<= 1 h)."""
    return min(base * 2 ** max(0, attempts - 1), MAX_RETRY_WAIT) * random.uniform(0.8, 1.2)


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, HubError):
        return exc.code, exc.message[:ERROR_LIMIT]
    return "HANDLER_ERROR", f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]


def _record_failure(services: Services, key: uuid.UUID, exc: Exception) -> ProcessOutcome:
    code, message = _describe(exc)
    log.warning("webhook event %s failed: %s", key, message)
    with services.sessions() as session, session.begin():
        row = session.get(WebhookEvent, key, with_for_update=True)
        if row is None:
            return ProcessOutcome(str(key), "skipped", error=message)
        row.attempts += 1
        row.last_error = message
        if row.attempts >= services.settings.webhook_max_attempts:
            _bury(session, services, row, code, message, exc)
        else:
            row.status = "failed"
            row.next_attempt_at = utcnow() + timedelta(
                seconds=retry_wait(services.settings.webhook_retry_base, row.attempts))
        status = row.status
        metrics.WEBHOOK_EVENTS_PROCESSED.labels(row.source, status).inc()
    return ProcessOutcome(str(key), status, error=message)


def _bury(session: Session, services: Services, row: WebhookEvent, code: str, message: str,
          exc: BaseException) -> None:
    """Mark the event dead and add its dead letter, announced once committed."""
    row.status = "dead"
    row.next_attempt_at = None
    letter = deadletters.record(
        session, origin="webhook", task_name=PROCESS_TASK, kwargs={"event_id": str(row.id)},
        tenant_id=row.tenant_id, endpoint_id=row.endpoint_id, error_code=code, error=message,
        attempts=row.attempts, traceback="".join(traceback.format_exception(exc)))
    deadletters.announce_after_commit(session, services.events, letter)


# --- beat and operators -----------------------------------------------------------

def sweep(services: Services, *, limit: int = 500, queued: int | None = None) -> int:
    """Re-enqueue events nobody picked up and failed events now due (beat).

    Catches lost enqueues (broker down after the intake's commit, a flushed
    Redis): pending rows older than ``HUB_WEBHOOK_PENDING_AFTER``. Each row sent
    gets a fresh deadline so a slow queue is not flooded with copies. ``queued``
    is how many messages the webhooks queue holds, if the caller knows: while it
    holds at least ``limit`` (a backlog), a pending row is most likely waiting in
    it rather than lost, so only due failures are sent; the stale rows are
    looked at again once the backlog is below ``limit``. Returns how many were
    enqueued.
    """
    now = utcnow()
    wait = timedelta(seconds=services.settings.webhook_pending_after)
    not_marked = or_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.next_attempt_at <= now)
    stale = and_(WebhookEvent.status == "pending", WebhookEvent.received_at <= now - wait,
                 not_marked)
    due = and_(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at <= now)
    backlog = queued is not None and queued >= limit
    if backlog:
        log.info("webhooks queue holds %d messages: pending events are left to it this time",
                 queued)
    with services.sessions() as session, session.begin():
        rows = session.scalars(
            select(WebhookEvent).where(due if backlog else or_(stale, due))
            .order_by(WebhookEvent.received_at)
            .limit(limit).with_for_update(skip_locked=True)).all()
        for row in rows:
            row.next_attempt_at = now + wait
            send_after_commit(session, services.dispatcher, PROCESS_TASK,
                              {"event_id": str(row.id)})
    return len(rows)


def replay_event(services: Services, event_id: str | uuid.UUID, *, tenant: str | None = None,
                 redeliver: bool = False) -> dict[str, Any]:
    """Run an event again on demand: handlers, events, fan-out to new subscriptions.

    Works for processed, failed and dead events (attempts start over). With
    ``redeliver``, existing deliveries are sent again too, keeping their
    ``webhook-id``. Raises NotFound for an unknown event (or another tenant's).
    """
    key = _event_key(event_id)
    with services.sessions() as session, session.begin():
        query = select(WebhookEvent).where(WebhookEvent.id == key)
        if tenant is not None:
            query = query.where(WebhookEvent.tenant_id == tenant)
        row = session.scalars(query.with_for_update()).one_or_none()
        if row is None:
            raise NotFound(f"no webhook event {event_id}")
        # The deadline keeps the sweeper from sending a second copy meanwhile.
        row.status, row.attempts = "pending", 0
        row.next_attempt_at = utcnow() + timedelta(seconds=services.settings.webhook_pending_after)
        row.last_error = None
        send_after_commit(session, services.dispatcher, PROCESS_TASK, {"event_id": str(key)})
        redelivered = sending.requeue_event(session, services, key) if redeliver else 0
    return {"event_id": str(key), "status": "pending", "redelivered": redelivered}
