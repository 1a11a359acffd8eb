"""Processing of recorded webhook events: the ``hub.webhooks.process`` task's core.

Events are processed in batches: the event a message names, plus up to
:data:`BATCH_SIZE` - 1 other pending events of its tenant waiting behind it (issue 10: one
transaction, one INSERT of deliveries and one broker message for the batch,
instead of one of each per event). The batch's rows are claimed with
``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers (and threads) split
the backlog between them; a message whose event another batch took finds it
processed (or locked) and does nothing, without a query when this process did it.
A worker that dies mid-way leaves the rows pending for the sweeper. Inside the
transaction: handlers run, deliveries are created for matching subscriptions,
the rows are marked processed, and, last before the commit, the cached answers
the handlers named are dropped (so nobody sees an event processed while its
stale answers are still served; a refill in between reads the provider, which
changed before it sent the webhook). After the commit: the events are published
(one Redis round trip) and the deliveries enqueued (``hub.deliveries.send_batch``,
a message per batch).

Ordering: events are taken oldest first, but neither processing nor delivery
order between events is guaranteed (several workers and threads run batches at
once). Each event keeps its own attempts, retries and dead letter: a handler
that fails fails its event alone (through that event's own message).

Events claimed by another event's batch are marked done in Redis for
:data:`DONE_MARK_TTL` seconds, so their own messages are dropped without a query
(a replay clears the mark before sending).

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
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.calls import cache
from hub.deliveries import sending
from hub.platform import deadletters, events, metrics
from hub.platform.db import on_commit
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
#: Events one transaction processes at most.
BATCH_SIZE = 50
#: Seconds an event processed by a batch is marked done in Redis, so that its own
#: message (queued behind) is dropped without a PostgreSQL transaction.
DONE_MARK_TTL = 600
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
    #: Events this call processed (its own and others of the batch it claimed).
    batch: int = 0


def _event_key(event_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(event_id))
    except ValueError:
        raise ValidationError(f"not a webhook event id: {event_id!r}") from None


def _done_key(services: Services, key: uuid.UUID) -> str:
    return services.settings.redis_key("webhook-done", str(key))


def _known_done(services: Services, key: uuid.UUID) -> bool:
    """True when a batch processed ``key`` lately (a marker in Redis): its message has
    nothing to do. False when unsure (no marker, Redis unreachable): ask PostgreSQL."""
    try:
        return bool(services.redis.exists(_done_key(services, key)))
    except (redis.RedisError, OSError):
        return False


def _mark_done(services: Services, keys: list[uuid.UUID]) -> None:
    try:
        pipe = services.redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(_done_key(services, key), 1, ex=DONE_MARK_TTL)
        pipe.execute()
    except (redis.RedisError, OSError):
        log.warning("processed-event markers not stored; their messages will ask "
                    "PostgreSQL", exc_info=True)


def _forget_done(services: Services, key: uuid.UUID) -> None:
    try:
        services.redis.delete(_done_key(services, key))
    except (redis.RedisError, OSError):
        log.warning("processed-event marker of %s not cleared; a message for it is "
                    "skipped until it expires (%d s)", key, DONE_MARK_TTL, exc_info=True)


def _claim(session: Session, key: uuid.UUID, size: int) -> list[WebhookEvent]:
    """The event ``key`` (if claimable and not locked) and up to ``size - 1`` other
    pending events of its tenant, oldest first, all locked until the transaction
    ends. Nothing when ``key`` itself cannot be claimed: its message is a duplicate,
    or another batch has it, and the tenant's backlog is that batch's to take."""
    own = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.id == key, WebhookEvent.status.in_(CLAIMABLE))
        .with_for_update(skip_locked=True)).one_or_none()
    if own is None or size <= 1:
        return [own] if own is not None else []
    others = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.tenant_id == own.tenant_id, WebhookEvent.status == "pending",
               WebhookEvent.id != key)
        .order_by(WebhookEvent.received_at).limit(size - 1)
        .with_for_update(skip_locked=True)).all()
    return [own, *others]


def _run_handlers(handlers: HandlerRegistry, inbound: InboundEvent) -> HandlerContext:
    ctx = HandlerContext(inbound.tenant)
    for handler in handlers.handlers_for(inbound.source, inbound.event_type):
        handler(inbound, ctx)
    return ctx


@dataclass
class _Done:
    """An event of the batch whose handlers ran."""

    row: WebhookEvent
    inbound: InboundEvent
    ctx: HandlerContext
    created: int = 0


def process_event(services: Services, event_id: str | uuid.UUID, *,
                  handlers: HandlerRegistry = registry,
                  batch_size: int = BATCH_SIZE) -> ProcessOutcome:
    """Process one recorded event (with other pending ones, see the module) at most
    once at a time, and once successfully; return the outcome of ``event_id``.

    An event that is already processed, or being processed by another worker,
    is skipped; a dead one runs again (only a dead-letter replay sends it).
    Handler and fan-out failures are recorded on the row (retry or dead letter)
    and reported in the outcome, not raised. Raises ValidationError for a
    malformed id; database errors propagate (the rows stay as they were and the
    sweeper retries them).

    Looks for the done mark a batch left first (:func:`skip_if_done`); a caller that
    just did calls :func:`process_batch`.
    """
    skipped = skip_if_done(services, event_id)
    if skipped is not None:
        return skipped
    return process_batch(services, event_id, handlers=handlers, batch_size=batch_size)


def process_batch(services: Services, event_id: str | uuid.UUID, *,
                  handlers: HandlerRegistry = registry,
                  batch_size: int = BATCH_SIZE) -> ProcessOutcome:
    """:func:`process_event` without looking for the done mark: the claim in PostgreSQL
    is what keeps an event from running twice, the mark only spares it."""
    key = _event_key(event_id)
    try:
        done, failed = _run_batch(services, key, handlers, batch_size)
    except Exception as exc:  # noqa: BLE001 - the batch rolled back: fail this event alone
        return _record_failure(services, key, exc)
    _mark_done(services, [d.row.id for d in done])
    announced = events.Batch()
    for item in done:
        _announce(announced, item.inbound, item.created)
        metrics.record_event_processed(item.inbound.source, "processed")
    announced.flush(services.events)
    for outcome in failed.values():
        metrics.record_event_processed(outcome.source, outcome.status)
    mine = next((d for d in done if d.row.id == key), None)
    if mine is not None:
        return ProcessOutcome(str(key), "processed", deliveries=mine.created, batch=len(done))
    if key in failed:
        return replace(failed[key].outcome, batch=len(done))
    metrics.record_event_processed("unknown", "skipped")
    return ProcessOutcome(str(key), "skipped")


def skip_if_done(services: Services, event_id: str | uuid.UUID) -> ProcessOutcome | None:
    """The ``skipped`` outcome of a message whose event a batch processed lately (one
    Redis read, no PostgreSQL); None when the message has to look (unsure, malformed)."""
    try:
        key = _event_key(event_id)
    except ValidationError:
        return None
    if not _known_done(services, key):
        return None
    metrics.record_event_processed("unknown", "skipped")
    return ProcessOutcome(str(key), "skipped")


@dataclass(frozen=True)
class _Failed:
    source: str
    status: str
    outcome: ProcessOutcome


def _run_batch(services: Services, key: uuid.UUID, handlers: HandlerRegistry,
                   size: int) -> tuple[list[_Done], dict[uuid.UUID, _Failed]]:
    """Claim, run handlers, fan out and mark processed, in one transaction. When the
    handlers of the message's own event raise, it is marked failed (or dead) in the
    same transaction; another event of the batch whose handlers raise is left
    pending for its own message, which fails it (and schedules its retry) itself."""
    done: list[_Done] = []
    failed: dict[uuid.UUID, _Failed] = {}
    with services.sessions() as session, session.begin():
        for row in _claim(session, key, size):
            try:
                inbound = inbound_event(row)
                done.append(_Done(row, inbound, _run_handlers(handlers, inbound)))
            except Exception as exc:  # noqa: BLE001 - a handler error fails its event
                if row.id == key:
                    outcome = _fail_row(session, services, row, exc)
                    failed[row.id] = _Failed(row.source, row.status, outcome)
        created = sending.create_for_events(session, services, [d.row for d in done])
        for item in done:
            item.created = created.get(item.row.id, 0)
            _mark_processed(item.row)
        for item in done:
            for wanted in item.ctx.invalidations:
                _invalidate(services, item.inbound.tenant, wanted)
    return done, failed


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


def _announce(announced: events.Batch, inbound: InboundEvent, created: int) -> None:
    announced.add("webhook.received", inbound.tenant, event_data(inbound, created),
                  extra_channels=(f"integration.webhook.{inbound.qualified_type}",))


def _invalidate(services: Services, tenant: str, wanted: CacheInvalidation) -> None:
    # Fails open: a stale cache entry expires on its own, while raising here would fail
    # and re-run the whole batch for a cache that is only an optimisation.
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
    with services.sessions() as session, session.begin():
        row = session.get(WebhookEvent, key, with_for_update=True)
        if row is None:
            return ProcessOutcome(str(key), "skipped", error=_describe(exc)[1])
        outcome = _fail_row(session, services, row, exc)
        metrics.record_event_processed(row.source, row.status)
    return outcome


def _fail_row(session: Session, services: Services, row: WebhookEvent,
              exc: Exception) -> ProcessOutcome:
    """Count a failed attempt on the locked ``row``: retry later, or dead-letter it."""
    code, message = _describe(exc)
    log.warning("webhook event %s failed: %s", row.id, message)
    row.attempts += 1
    row.last_error = message
    if row.attempts >= services.settings.webhook_max_attempts:
        _bury(session, services, row, code, message, exc)
    else:
        row.status = "failed"
        row.next_attempt_at = utcnow() + timedelta(
            seconds=retry_wait(services.settings.webhook_retry_base, row.attempts))
    return ProcessOutcome(str(row.id), row.status, error=message)


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
    ``webhook-id``; one that already has a send pending is left to it (counted in
    ``already_pending``). Raises NotFound for an unknown event (or another tenant's).
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
        # Cleared before the message goes: it must not be taken for a leftover of a batch.
        on_commit(session, lambda: _forget_done(services, key))
        send_after_commit(session, services.dispatcher, PROCESS_TASK, {"event_id": str(key)})
        resent = (sending.requeue_event(session, services, key) if redeliver
                  else {"redelivered": 0, "already_pending": 0})
    return {"event_id": str(key), "status": "pending", **resent}
