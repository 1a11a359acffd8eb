"""Outbound deliveries: one signed POST of one event to one subscription (DESIGN §5).

Life of a delivery row (PostgreSQL is the source of truth, the broker only a
wake-up call)::

    pending ──claim──> delivering ──2xx──> succeeded
       ^                   │ 410 ──> cancelled (subscription disabled)
       │ beat, retry,      │ other ──> failed (next_attempt_at) ──> ... ──> dead
       └── replay ─────────┘                 schedule exhausted: dead letter

``pending`` rows are waiting for a worker and ``failed`` rows for their
``next_attempt_at``; both carry a deadline in ``next_attempt_at`` after which
beat (:func:`send_due`) sends them again, so a lost message or a killed worker
delays a delivery but never loses it. Only waits up to
:data:`COUNTDOWN_LIMIT` (the 5 s first retry) also get a Celery countdown.
Every message is claimed with ``FOR UPDATE SKIP LOCKED`` plus a status check,
so duplicates (countdown and beat, a redelivered message) send once. The claim
also writes the attempt's ``delivery_attempts`` row, before the POST leaves; the
answer fills it in. A worker that dies in between leaves an attempt whose
outcome is unknown (the receiver may have it): beat sends it again, with the same
``webhook-id``, once the lease is over. That is the one duplicate left, and the
receiver can drop it by ``webhook-id`` (Standard Webhooks is at-least-once).

Batches (issue 10): the deliveries of a batch of processed events travel in one
``hub.deliveries.send_batch`` message. Its worker claims them in one statement,
POSTs them concurrently (a thread per delivery, at most ``HUB_WORKER_CONCURRENCY``
per process) and records every answer in one transaction; each delivery keeps
its own attempts, retry schedule and dead letter. No order is kept between
deliveries, to one subscriber or to several: a receiver that needs order sorts by
the payload's ``timestamp`` (Standard Webhooks makes the same point).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, cast

import requests
from sqlalchemy import Table, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hub.calls import http
from hub.calls.retry import parse_retry_after
from hub.deliveries import standard_webhooks, subscriptions
from hub.platform import deadletters, events, metrics
from hub.platform.dispatch import send_after_commit
from hub.platform.errors import Conflict, HubError, NotFound, ValidationError
from hub.platform.inbound import inbound_event, qualified_type
from hub.platform.models import Delivery, DeliveryAttempt, Subscription, WebhookEvent
from hub.platform.scheduler import utcnow
from hub.platform.services import Services
from hub.platform.vault import Secret

log = logging.getLogger(__name__)

SEND_TASK = "hub.deliveries.send"
BATCH_TASK = "hub.deliveries.send_batch"
#: Deliveries one ``send_batch`` message carries at most.
BATCH_SIZE = 50
#: Responses that mean "slow down" rather than "broken" (Standard Webhooks).
THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
#: The shortest wait after a throttling answer, seconds.
THROTTLE_MIN_WAIT = 60.0
#: Waits up to this long also get a Celery countdown; longer ones only beat.
COUNTDOWN_LIMIT = 10.0
#: A claimed delivery whose worker vanished is sent again after this margin.
LEASE_MARGIN = 60.0
#: An early message (countdown vs. clock skew) may send this much before its time.
EARLY_SLACK = 2.0
EXCERPT_LIMIT = 1000
CLAIMABLE = ("pending", "failed", "delivering", "dead")


# --- creating deliveries ----------------------------------------------------------

def new_message_id() -> str:
    """A Standard Webhooks ``webhook-id``; kept for every retry and replay."""
    return "msg_" + uuid.uuid4().hex


def _lease(services: Services) -> datetime:
    """When beat should re-send a row whose message (or worker) went missing."""
    return utcnow() + timedelta(seconds=max(services.settings.webhook_pending_after,
                                            services.settings.delivery_timeout + LEASE_MARGIN))


def create_for_event(session: Session, services: Services, event: WebhookEvent) -> int:
    """Create a delivery of ``event`` for each matching active subscription.

    Idempotent: an existing (subscription, event) delivery is left alone. New
    ones are enqueued after ``session`` commits. Returns how many were created.
    """
    return create_for_events(session, services, [event]).get(event.id, 0)


# The rows go to execute as parameters (an executemany, which SQLAlchemy still sends as
# one multi-row INSERT), so the statement compiles once per process; rows written into
# it with .values() made it compile anew for every batch, most of what creating a
# batch's deliveries cost. Core's table: nothing here needs the ORM's bulk machinery.
_DELIVERIES = cast(Table, Delivery.__table__)
_INSERT_NEW = (insert(_DELIVERIES)
               .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
               .returning(_DELIVERIES.c.id, _DELIVERIES.c.event_id))


def create_for_events(session: Session, services: Services,
                      rows: Sequence[WebhookEvent]) -> dict[uuid.UUID, int]:
    """:func:`create_for_event` for many events: one INSERT, and after ``session``
    commits one ``send_batch`` message per :data:`BATCH_SIZE` new deliveries.
    Returns how many deliveries each event got (events with none are absent)."""
    values = []
    matching: dict[tuple[str, str], list[Subscription]] = {}
    lease = _lease(services)
    for event in rows:
        qualified = qualified_type(event.source, event.event_type)
        subs = matching.get((event.tenant_id, qualified))
        if subs is None:
            subs = matching[(event.tenant_id, qualified)] = subscriptions.matching(
                session, event.tenant_id, qualified)
        values += [{"tenant_id": event.tenant_id, "subscription_id": sub.id,
                    "event_id": event.id, "message_id": new_message_id(),
                    "event_type": qualified, "status": "pending", "next_attempt_at": lease}
                   for sub in subs]
    if not values:
        return {}
    created = session.execute(_INSERT_NEW, values).all()
    enqueue_batches(session, services, [row.id for row in created])
    counts: dict[uuid.UUID, int] = {}
    for row in created:
        counts[row.event_id] = counts.get(row.event_id, 0) + 1
    return counts


def enqueue_batches(session: Session, services: Services, ids: Sequence[uuid.UUID], *,
                    queue: str | None = None) -> None:
    """Send ``ids`` in ``send_batch`` messages of at most :data:`BATCH_SIZE`, after
    ``session`` commits."""
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = [str(i) for i in ids[start:start + BATCH_SIZE]]
        send_after_commit(session, services.dispatcher, BATCH_TASK, {"delivery_ids": chunk},
                          queue=queue)


#: A delivery in these states already has a send coming (queued, scheduled by a paced
#: replay, or on the wire now): an operator's re-send joins it instead of adding a POST.
RESEND_PENDING = ("pending", "delivering")


def requeue(session: Session, services: Services, delivery: Delivery, *,
            queue: str | None = None, restart_schedule: bool = False) -> None:
    """Make ``delivery`` pending again (same ``message_id``) and enqueue it after commit.

    ``restart_schedule`` (an operator's re-send) starts the retry schedule over;
    attempts keep their numbers either way.
    """
    delivery.status = "pending"
    delivery.next_attempt_at = _lease(services)
    if restart_schedule:
        delivery.schedule_from = delivery.attempts
    send_after_commit(session, services.dispatcher, SEND_TASK,
                      {"delivery_id": str(delivery.id)}, queue=queue)


# --- the message ------------------------------------------------------------------

def payload(event: WebhookEvent) -> bytes:
    """The body POSTed to subscribers; the same bytes on every retry and replay.

    ``{"type", "timestamp", "data"}`` as Standard Webhooks recommends, plus the
    hub's ids. Raw headers and signatures of the provider are never passed on.
    """
    inbound = inbound_event(event)
    document = {
        "id": str(event.id), "type": inbound.qualified_type, "source": event.source,
        "event_type": inbound.event_type, "external_id": event.external_id,
        "tenant": event.tenant_id, "timestamp": event.received_at.isoformat(),
        "data": inbound.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class _Claim:
    delivery_id: uuid.UUID
    attempt_id: uuid.UUID
    subscription_id: uuid.UUID
    tenant: str
    attempt: int
    message_id: str
    url: str
    secrets: Secret[list[str]]
    body: bytes
    schedule: tuple[float, ...]
    schedule_step: int  # attempts since the schedule (re)started, this one included


@dataclass(frozen=True)
class _Response:
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int
    retry_after: float | None


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one :func:`send_delivery` call did."""

    delivery_id: str
    status: str
    attempt: int = 0
    status_code: int | None = None
    next_attempt_at: datetime | None = None


# --- sending ----------------------------------------------------------------------

def _claim(session: Session, services: Services, keys: Sequence[uuid.UUID]) -> list[_Claim]:
    """Claim the deliveries of ``keys`` that are due and not locked, in one statement."""
    now = utcnow()
    due = Delivery.next_attempt_at <= now + timedelta(seconds=EARLY_SLACK)
    found = session.execute(
        select(Delivery, Subscription, WebhookEvent)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(WebhookEvent, WebhookEvent.id == Delivery.event_id)
        .where(Delivery.id.in_(keys), Delivery.status.in_(CLAIMABLE),
               or_(Delivery.status.in_(("pending", "dead")), Delivery.next_attempt_at.is_(None),
                   due))
        .with_for_update(of=Delivery, skip_locked=True)).all()
    claims = []
    secrets: dict[uuid.UUID, Secret[list[str]]] = {}
    for delivery, sub, event in found:
        if not sub.active:
            delivery.status = "cancelled"
            delivery.next_attempt_at = None
            continue
        delivery.status = "delivering"
        delivery.attempts += 1
        delivery.next_attempt_at = _lease(services)
        # The attempt is logged in the claim's transaction, before the POST leaves: a
        # worker killed mid-request leaves an attempt without an outcome, never a gap
        # (deliveries.attempts = 2 with only attempt 2 logged; issue 9 item 6).
        attempt = DeliveryAttempt(id=uuid.uuid4(), delivery_id=delivery.id,
                                  attempt=delivery.attempts)
        session.add(attempt)
        if sub.id not in secrets:  # one decryption per subscription and batch
            secrets[sub.id] = subscriptions.secrets_of(services.vault, sub)
        claims.append(_Claim(delivery.id, attempt.id, sub.id, sub.tenant_id, delivery.attempts,
                             delivery.message_id, sub.url, secrets[sub.id], payload(event),
                             subscriptions.schedule_for(sub, services.settings),
                             delivery.attempts - delivery.schedule_from))
    return claims


def _post(services: Services, claim: _Claim) -> _Response:
    settings = services.settings
    headers = {"content-type": "application/json", "user-agent": "integration-hub/1",
               **standard_webhooks.headers(claim.secrets.reveal(), claim.message_id, claim.body)}
    session = http.session_for(f"subscription:{claim.subscription_id}", settings)
    started = time.monotonic()
    try:
        response = http.send(session, requests.Request("POST", claim.url, data=claim.body,
                                                       headers=headers),
                             settings, timeout=settings.delivery_timeout, allow_redirects=False)
    except HubError as exc:
        return _Response(None, None, exc.message[:EXCERPT_LIMIT],
                         int((time.monotonic() - started) * 1000), None)
    return _Response(response.status_code, response.text[:EXCERPT_LIMIT], None,
                     int((time.monotonic() - started) * 1000),
                     parse_retry_after(response.headers.get("Retry-After")))


def send_delivery(services: Services, delivery_id: str) -> DeliveryOutcome:
    """Send one delivery if it is due and unclaimed; record the attempt and what follows.

    A delivery already claimed, finished, cancelled or not yet due is left
    alone (status ``skipped``). Never raises for the receiver's behaviour;
    raises ValidationError for a malformed id, and database errors as they are
    (the row then stays due and beat sends it again).
    """
    try:
        key = uuid.UUID(str(delivery_id))
    except ValueError:
        raise ValidationError(f"not a delivery id: {delivery_id!r}") from None
    return send_deliveries(services, [key])[0]


def send_deliveries(services: Services, delivery_ids: Sequence[str | uuid.UUID],
                    ) -> list[DeliveryOutcome]:
    """:func:`send_delivery` for many: claimed in one statement, POSTed concurrently,
    recorded in one transaction. One outcome per id, in order (``skipped`` for those
    not claimed). Raises ValidationError for a malformed id (before anything is sent)."""
    try:
        keys = [uuid.UUID(str(i)) for i in delivery_ids]
    except ValueError:
        raise ValidationError(f"not a list of delivery ids: {list(delivery_ids)!r}") from None
    with services.sessions() as session, session.begin():
        claims = _claim(session, services, keys)
    responses = _post_all(services, claims)
    done = {o.delivery_id: o for o in _finish(services, claims, responses)} if claims else {}
    return [done.get(str(k), DeliveryOutcome(str(k), "skipped")) for k in keys]


def _post_all(services: Services, claims: Sequence[_Claim]) -> list[_Response]:
    """POST every claim at once (one of them in this thread), answers in order."""
    if len(claims) <= 1:
        return [_post(services, c) for c in claims]
    pool = services.shared("delivery-senders", lambda: ThreadPoolExecutor(
        max_workers=services.settings.worker_concurrency, thread_name_prefix="hub-delivery"))
    later = [pool.submit(_post, services, c) for c in claims[1:]]
    return [_post(services, claims[0]), *(f.result() for f in later)]


# --- what an answer means ---------------------------------------------------------

def scheduled_wait(schedule: Sequence[float], attempt: int, jitter: float,
                   rng: random.Random | None = None) -> float | None:
    """The wait after failed attempt number ``attempt`` (1-based), jittered; None when done."""
    if attempt > len(schedule):
        return None
    spread = (rng or random).uniform(1 - jitter, 1 + jitter)
    return schedule[attempt - 1] * spread


def throttled_wait(scheduled: float, retry_after: float | None) -> float:
    """Honour ``Retry-After`` within [scheduled, 2 x scheduled], never under a minute."""
    wait = scheduled if retry_after is None else min(max(retry_after, scheduled), 2 * scheduled)
    return max(wait, THROTTLE_MIN_WAIT)


def _ok(response: _Response) -> bool:
    return response.status_code is not None and 200 <= response.status_code < 300


def _last_error(response: _Response) -> str | None:
    if response.error:
        return response.error
    if response.status_code is None or _ok(response):
        return None
    return f"receiver answered {response.status_code}"


# A batch's answers go in two statements whatever its size (issue 10), their parameters
# arrays; the ORM flushed two UPDATEs per delivery, most of what recording a batch cost.
# First each attempt row logged at the claim gets its answer (one an operator deleted
# meanwhile is written again).
_RECORD_ATTEMPTS = text("""
    INSERT INTO delivery_attempts
        (id, delivery_id, attempt, status_code, response_excerpt, error, duration_ms)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:deliveries AS uuid[]),
                         CAST(:attempts AS integer[]), CAST(:codes AS integer[]),
                         CAST(:excerpts AS text[]), CAST(:errors AS text[]),
                         CAST(:durations AS integer[]))
    ON CONFLICT (id) DO UPDATE SET status_code = excluded.status_code,
        response_excerpt = excluded.response_excerpt, error = excluded.error,
        duration_ms = excluded.duration_ms""")
# Each delivery's last answer; a 2xx also makes it succeeded (failures go on in the ORM).
_RECORD_ANSWERS = text("""
    UPDATE deliveries AS d
    SET last_status_code = v.code, last_response_excerpt = v.excerpt, last_error = v.error,
        last_duration_ms = v.duration, updated_at = now(),
        status = CASE WHEN v.ok THEN 'succeeded' ELSE d.status END,
        delivered_at = CASE WHEN v.ok THEN CAST(:now AS timestamptz) ELSE d.delivered_at END,
        next_attempt_at = CASE WHEN v.ok THEN NULL ELSE d.next_attempt_at END
    FROM unnest(CAST(:ids AS uuid[]), CAST(:codes AS integer[]), CAST(:excerpts AS text[]),
                CAST(:errors AS text[]), CAST(:durations AS integer[]),
                CAST(:ok AS boolean[])) AS v(id, code, excerpt, error, duration, ok)
    WHERE d.id = v.id""")


def _record_answers(session: Session, claims: Sequence[_Claim],
                    responses: Sequence[_Response]) -> None:
    codes = [r.status_code for r in responses]
    excerpts = [r.excerpt for r in responses]
    durations = [r.duration_ms for r in responses]
    session.execute(_RECORD_ATTEMPTS, {
        "ids": [c.attempt_id for c in claims], "deliveries": [c.delivery_id for c in claims],
        "attempts": [c.attempt for c in claims], "codes": codes, "excerpts": excerpts,
        "errors": [r.error for r in responses], "durations": durations})
    session.execute(_RECORD_ANSWERS, {
        "ids": [c.delivery_id for c in claims], "codes": codes, "excerpts": excerpts,
        "errors": [_last_error(r) for r in responses], "durations": durations,
        "ok": [_ok(r) for r in responses], "now": utcnow()})


def _disable(session: Session, sub: Subscription, delivery: Delivery, reason: str) -> None:
    subscriptions.disable(session, sub, reason)
    delivery.status = "cancelled"
    delivery.next_attempt_at = None


def _failing_too_long(services: Services, sub: Subscription) -> bool:
    since = sub.failing_since
    period = timedelta(seconds=services.settings.delivery_disable_after)
    return since is not None and utcnow() - since >= period


def _retry_or_bury(session: Session, services: Services, claim: _Claim,
                   response: _Response, delivery: Delivery) -> float | None:
    wait = scheduled_wait(claim.schedule, claim.schedule_step, services.settings.delivery_jitter)
    if wait is None:
        delivery.status = "dead"
        delivery.next_attempt_at = None
        letter = deadletters.record(
            session, origin="delivery", task_name=SEND_TASK,
            kwargs={"delivery_id": str(claim.delivery_id)}, tenant_id=claim.tenant,
            error_code="DELIVERY_FAILED", error=delivery.last_error, attempts=claim.attempt)
        deadletters.announce_after_commit(session, services.events, letter)
        return None
    if response.status_code in THROTTLE_STATUSES:
        wait = throttled_wait(wait, response.retry_after)
    delivery.status = "failed"
    delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
    if wait <= COUNTDOWN_LIMIT:
        send_after_commit(session, services.dispatcher, SEND_TASK,
                          {"delivery_id": str(claim.delivery_id)}, countdown=wait)
    return wait


def _clear_failures(session: Session, subscription_ids: set[uuid.UUID]) -> None:
    # Touch a subscription only when it has a failure record to clear: locking it on
    # every success would serialise all deliveries to a busy subscriber.
    if subscription_ids:
        session.execute(update(Subscription)
                        .where(Subscription.id.in_(subscription_ids),
                               or_(Subscription.consecutive_failures != 0,
                                   Subscription.failing_since.is_not(None)))
                        .values(consecutive_failures=0, failing_since=None)
                        .execution_options(synchronize_session=False))


def _failed(session: Session, services: Services, claim: _Claim, response: _Response,
            delivery: Delivery, sub: Subscription) -> str | None:
    """Update delivery and subscription; return a reason when the subscription got disabled."""
    code = response.status_code
    if code == 410:
        reason = "receiver answered 410 Gone"
        _disable(session, sub, delivery, reason)
        return reason
    sub.consecutive_failures += 1
    sub.failing_since = sub.failing_since or utcnow()
    if _failing_too_long(services, sub):
        reason = (f"only failures since {sub.failing_since.isoformat()} "
                  f"({sub.consecutive_failures} in a row)")
        _disable(session, sub, delivery, reason)
        return reason
    _retry_or_bury(session, services, claim, response, delivery)
    return None


def _finish(services: Services, claims: Sequence[_Claim],
            responses: Sequence[_Response]) -> list[DeliveryOutcome]:
    """Record every attempt and what follows, in one transaction."""
    outcomes, disabled = [], events.Batch()
    with services.sessions() as session, session.begin():
        # Locked in one order, so that two transactions on the same rows wait, not deadlock.
        session.execute(select(Delivery.id).where(Delivery.id.in_([c.delivery_id for c in claims]))
                        .order_by(Delivery.id).with_for_update())
        _record_answers(session, claims, responses)
        failed = {c.delivery_id for c, r in zip(claims, responses) if not _ok(r)}
        # Held here: the identity map keeps only weak references (a row nobody holds is
        # loaded again, one SELECT each).
        rows = {d.id: d for d in session.scalars(
            select(Delivery).where(Delivery.id.in_(failed)))} if failed else {}
        delivered: set[uuid.UUID] = set()
        for claim, response in zip(claims, responses):
            if _ok(response):
                delivered.add(claim.subscription_id)
                outcomes.append(DeliveryOutcome(str(claim.delivery_id), "succeeded",
                                                claim.attempt, response.status_code))
                continue
            delivery = rows[claim.delivery_id]  # a claimed row is not deleted
            sub = session.get(Subscription, claim.subscription_id, with_for_update=True)
            assert sub is not None
            reason = _failed(session, services, claim, response, delivery, sub)
            if reason:
                disabled.add("subscription.disabled", claim.tenant, {
                    "subscription_id": str(claim.subscription_id), "reason": reason})
            outcomes.append(DeliveryOutcome(str(delivery.id), delivery.status, claim.attempt,
                                            response.status_code, delivery.next_attempt_at))
        _clear_failures(session, delivered)
    for response, outcome in zip(responses, outcomes):
        _count(response, outcome.status)
    disabled.flush(services.events)
    return outcomes


def _count(response: _Response, status: str) -> None:
    code = response.status_code
    label = ("dead" if status == "dead" else "error" if code is None
             else "succeeded" if 200 <= code < 300 else "gone" if code == 410
             else "throttled" if code in THROTTLE_STATUSES else "failed")
    metrics.record_delivery(label, response.duration_ms / 1000)


# --- beat -------------------------------------------------------------------------

def send_due(services: Services, *, limit: int = 500) -> int:
    """Enqueue deliveries whose wait is over or whose message went missing (beat).

    Rows are locked with SKIP LOCKED, marked pending with a fresh deadline and
    enqueued after commit. Returns how many were enqueued.
    """
    with services.sessions() as session, session.begin():
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.status.in_(("pending", "failed", "delivering")),
                   Delivery.next_attempt_at <= utcnow())
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)).all()
        lease = _lease(services)
        for delivery in rows:
            delivery.status, delivery.next_attempt_at = "pending", lease
        enqueue_batches(session, services, [d.id for d in rows])
    return len(rows)


def view(delivery: Delivery) -> dict[str, Any]:
    """A JSON-able summary of a delivery."""
    return {
        "id": str(delivery.id), "tenant": delivery.tenant_id,
        "subscription_id": str(delivery.subscription_id), "event_id": str(delivery.event_id),
        "message_id": delivery.message_id, "event_type": delivery.event_type,
        "status": delivery.status, "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at, "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error, "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
    }


# --- operators --------------------------------------------------------------------

def requeue_event(session: Session, services: Services,
                  event_id: uuid.UUID) -> dict[str, int]:
    """Send every delivery of one event again (same ``webhook-id``).

    A delivery that already has a send pending (:data:`RESEND_PENDING`) is left to it:
    it is sent once, not twice. Returns ``{"redelivered", "already_pending"}``.
    """
    rows = session.scalars(select(Delivery).where(Delivery.event_id == event_id)
                           .with_for_update()).all()
    idle = [d for d in rows if d.status not in RESEND_PENDING]
    for delivery in idle:
        requeue(session, services, delivery, restart_schedule=True)
    return {"redelivered": len(idle), "already_pending": len(rows) - len(idle)}


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries an operator means; ``tenant`` is always required."""

    tenant: str
    subscription_id: uuid.UUID | None = None
    event_type: str | None = None  # fnmatch pattern over ``<source>.<event_type>``
    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = ()
    limit: int = 1000


def find(session: Session, flt: DeliveryFilter, *, lock: bool = False,
         newest_first: bool = False) -> list[Delivery]:
    """Deliveries matching ``flt`` (at most ``flt.limit``), oldest first: the order a
    replay sends them in; ``newest_first`` for listings."""
    query = select(Delivery).where(Delivery.tenant_id == flt.tenant)
    if flt.subscription_id is not None:
        query = query.where(Delivery.subscription_id == flt.subscription_id)
    if flt.since is not None:
        query = query.where(Delivery.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(Delivery.created_at < flt.until)
    if flt.statuses:
        query = query.where(Delivery.status.in_(flt.statuses))
    order = ((Delivery.created_at.desc(), Delivery.id.desc()) if newest_first
             else (Delivery.created_at, Delivery.id))
    query = query.order_by(*order).limit(flt.limit)
    rows = session.scalars(query.with_for_update(skip_locked=True) if lock else query).all()
    return [d for d in rows
            if flt.event_type is None or fnmatchcase(d.event_type or "", flt.event_type)]


def show(session: Session, tenant: str, delivery_id: str) -> dict[str, Any]:
    """One delivery with every attempt (status, response excerpt, error, duration).

    An attempt whose ``outcome_known`` is false was being sent when its worker
    died: the receiver may or may not have it.

    Raises NotFound for an unknown id or another tenant's delivery.
    """
    delivery = session.scalars(select(Delivery).where(
        Delivery.id == _delivery_key(delivery_id), Delivery.tenant_id == tenant)).one_or_none()
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id} for tenant {tenant}")
    attempts = session.scalars(select(DeliveryAttempt)
                               .where(DeliveryAttempt.delivery_id == delivery.id)
                               .order_by(DeliveryAttempt.attempted_at))
    return {**view(delivery), "last_response_excerpt": delivery.last_response_excerpt,
            "attempt_log": [{"attempt": a.attempt, "status_code": a.status_code,
                             "response_excerpt": a.response_excerpt, "error": a.error,
                             "duration_ms": a.duration_ms, "attempted_at": a.attempted_at,
                             "outcome_known": a.duration_ms is not None}
                            for a in attempts]}


def retry(services: Services, tenant: str, delivery_id: str) -> dict[str, Any]:
    """Send one delivery again now (failed, dead or cancelled ones included), with its
    retry schedule started over.

    One that already has a send pending (queued, or scheduled later by a paced
    replay) is brought forward and still sent once; one being sent right now is
    left to that send. Either way ``already_pending`` is true in the result.
    Raises NotFound for an unknown id or another tenant's delivery, Conflict when
    its subscription is disabled (enable it first).
    """
    with services.sessions() as session, session.begin():
        delivery = session.scalars(
            select(Delivery).where(Delivery.id == _delivery_key(delivery_id),
                                   Delivery.tenant_id == tenant).with_for_update()).one_or_none()
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id} for tenant {tenant}")
        _require_active(session, delivery)
        already_pending = delivery.status in RESEND_PENDING
        if delivery.status != "delivering":
            requeue(session, services, delivery, restart_schedule=not already_pending)
        return {**view(delivery), "already_pending": already_pending}


def replay(services: Services, flt: DeliveryFilter, *, dry_run: bool = False,
           rate: float | None = None) -> dict[str, Any]:
    """Send a filtered set of deliveries again, same ``webhook-id``, oldest first.

    Without ``rate`` all are enqueued at once on the ``replay`` queue. With
    ``rate`` (deliveries per second) each is scheduled in PostgreSQL, the k-th
    at ``now + k / rate``, and beat's :func:`send_due` sends it when due, so a
    receiver that is just recovering is not flooded and nothing depends on the
    operator's terminal staying open. Deliveries of disabled subscriptions are
    skipped. With ``dry_run`` nothing changes; the result lists what would be
    sent either way. A delivery that already has a send pending (queued, scheduled by
    an earlier paced replay, or being sent) is left to it and counted in
    ``already_pending``: it is sent once, not once per command.
    """
    if rate is not None and rate <= 0:
        raise ValidationError("rate must be a positive number of deliveries per second")
    with services.sessions() as session, session.begin():
        rows = find(session, flt, lock=not dry_run)
        active = {s.id for s in session.scalars(select(Subscription).where(
            Subscription.id.in_({d.subscription_id for d in rows}), Subscription.active))}
        eligible = [d for d in rows if d.subscription_id in active]
        chosen = [d for d in eligible if d.status not in RESEND_PENDING]
        now = utcnow()
        if not dry_run:
            for position, delivery in enumerate(chosen):
                if rate is None:
                    requeue(session, services, delivery, restart_schedule=True,
                            queue=services.settings.queue("replay"))
                else:
                    delivery.status, delivery.schedule_from = "pending", delivery.attempts
                    delivery.next_attempt_at = now + timedelta(seconds=position / rate)
        result: dict[str, Any] = {
            "dry_run": dry_run, "count": len(chosen),
            "already_pending": len(eligible) - len(chosen),
            "skipped_inactive": len(rows) - len(eligible),
            "deliveries": [{"id": str(d.id), "message_id": d.message_id,
                            "event_type": d.event_type} for d in chosen]}
        if rate is not None and chosen:
            result["last_scheduled_at"] = now + timedelta(seconds=(len(chosen) - 1) / rate)
        return result


def _delivery_key(delivery_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(delivery_id))
    except ValueError:
        raise NotFound(f"no delivery {delivery_id}") from None


def _require_active(session: Session, delivery: Delivery) -> None:
    sub = session.get(Subscription, delivery.subscription_id)
    if sub is None or not sub.active:
        raise Conflict(f"subscription {delivery.subscription_id} is disabled; enable it first")
