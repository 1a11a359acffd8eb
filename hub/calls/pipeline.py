"""The call pipeline: one path for every adapter operation (DESIGN §4, issue 3).

    resolve -> validate -> attempt count -> idempotency -> cache lookup -> quota
    -> breaker -> auth -> adapter request -> transform -> cache store -> audit -> events

:func:`execute_call` runs one attempt and returns a :class:`CallOutcome`; the
Celery task maps it to a result, a retry (countdown or PostgreSQL) or a failure.
Each step is a small function of this module or of its own module.

The cache is looked up *before* the quota and the breaker (the issue lists it
after them): a cached answer costs the provider nothing, so it should neither
spend quota nor be refused while the provider's circuit is open - serving the
cache is exactly the graceful degradation an open circuit asks for.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg
import requests
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from hub import adapters
from hub.adapters import transform
from hub.adapters.base import Adapter, IntegrationView, Operation, OutboundRequest
from hub.calls import audit, auth, cache, failover, http, idempotency, integrations
from hub.calls.auth.base import AuthStrategy
from hub.calls.breaker import breaker_for
from hub.calls.preflight import Preflight
from hub.calls.quotas import ProviderHold, QuotaLimiter
from hub.calls.retry import RetryPolicy, is_retryable_status, parse_retry_after
from hub.platform import deadletters, events, metrics, pgtext, redaction, scheduler
from hub.platform.errors import (
    AuthError,
    CircuitOpen,
    Conflict,
    DeadLettered,
    HubError,
    OutcomeUnknown,
    RateLimited,
    RetryableError,
    UpstreamError,
    ValidationError,
)
from hub.platform.models import Integration, IntegrationLog
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

log = logging.getLogger(__name__)

RATE_LIMIT_MODES = ("wait", "fail")
#: Methods that change nothing at the provider (RFC 9110 §9.2.1): no ``sending`` row.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: How long a duplicate waits in-task for the owner of its idempotency key.
IDEMPOTENCY_WAIT = 5.0
#: Countdown before a duplicate looks again when the owner is still running.
IDEMPOTENCY_RECHECK = 2.0
ERROR_EXCERPT = 500

OutcomeStatus = Literal["success", "failed", "retry", "exhausted"]


class CallFailed(Exception):
    """Raised by the call tasks; its only argument is the public failure envelope.

    A client that has only Celery installed rebuilds it as a generic exception
    with the same ``args[0]`` (Celery's JSON exception serialisation keeps the
    type name, module and args), so ``result.result.args[0]`` is the envelope.
    """

    def __init__(self, envelope: dict[str, Any]) -> None:
        super().__init__(envelope)
        self.envelope = envelope

    def __str__(self) -> str:
        return json.dumps(self.envelope, sort_keys=True, default=str)


@dataclass(frozen=True)
class CallRequest:
    """One ``hub.call``: plain JSON, no secrets.

    ``cache``: None uses the operation's default, False bypasses the cache for this
    call (and does not store), True asks for caching of a cacheable operation.
    ``on_rate_limit``: ``wait`` (default) re-schedules a call over its quota for when
    the window frees; ``fail`` fails it at once with RATE_LIMITED.
    """

    tenant: str
    integration: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    cache: bool | None = None
    timeout: float | None = None
    on_rate_limit: str = "wait"

    def as_kwargs(self) -> dict[str, Any]:
        """The ``hub.call`` kwargs of this call (what its dead letter replays)."""
        return {"tenant": self.tenant, "integration": self.integration,
                "operation": self.operation, "params": dict(self.params),
                "idempotency_key": self.idempotency_key, "cache": self.cache,
                "timeout": self.timeout, "on_rate_limit": self.on_rate_limit}


def new_request(tenant: Any, integration: Any, operation: Any, params: Any = None,
                idempotency_key: Any = None, cache: Any = None, timeout: Any = None,
                on_rate_limit: Any = "wait", unknown: Mapping[str, Any] | None = None
                ) -> CallRequest:
    """A :class:`CallRequest` from a task's arguments, checked: a caller's mistake (a
    missing or unknown argument, a wrong type) is VALIDATION_ERROR in the envelope, not
    a TypeError in the worker. Raises ValidationError naming the arguments."""
    problems = [f"{name} is required (a non-empty string)" for name, value in (
        ("tenant", tenant), ("integration", integration), ("operation", operation))
        if not isinstance(value, str) or not value]
    if unknown:
        problems.append(f"unknown argument(s) {', '.join(sorted(unknown))}")
    if params is not None and not isinstance(params, Mapping):
        problems.append("params must be a JSON object")
    if on_rate_limit not in ("wait", "fail"):
        problems.append("on_rate_limit must be 'wait' or 'fail'")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float)) or timeout <= 0):
        problems.append("timeout must be a positive number of seconds")
    if problems:
        raise ValidationError("bad hub.call arguments: " + "; ".join(problems),
                              details={"problems": problems})
    return CallRequest(tenant, integration, operation, params or {}, idempotency_key, cache,
                       timeout, on_rate_limit)


@dataclass
class CallOutcome:
    """``success``: ``result`` is the envelope. ``failed``/``exhausted``: ``error``.
    ``retry``: run again in ``delay`` seconds."""

    status: OutcomeStatus
    result: dict[str, Any] | None = None
    error: HubError | None = None
    delay: float = 0.0
    attempt: int = 1
    integration: str | None = None
    reason: str | None = None
    #: An exhausted call whose operation asks for a supervisor alert when dead-lettered.
    alert: bool = False
    #: The receive counter the pre-reads incremented was deleted with the call's
    #: events (the run ended with this outcome, which is not a retry).
    counter_forgotten: bool = False

    def failure(self) -> HubError:
        """The error a ``failed``/``exhausted`` outcome ends with (INTERNAL_ERROR if
        none was recorded)."""
        return self.error or HubError("call failed")


@dataclass(frozen=True)
class Target:
    """The resolved integration and operation: a snapshot, no open session."""

    row: Integration
    adapter: Adapter
    op: Operation

    @property
    def view(self) -> IntegrationView:
        return IntegrationView(self.row.name, self.row.base_url, self.row.config or {})


@dataclass
class Attempt:
    """State gathered while one attempt runs."""

    request: CallRequest
    target: Target
    number: int
    task_id: str | None
    started_at: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.monotonic)
    secrets: list[str] = field(default_factory=list)
    outbound: requests.PreparedRequest | None = None
    response: requests.Response | None = None
    #: An expired cache entry with an ETag, revalidated with If-None-Match.
    stale: cache.CachedResponse | None = None
    #: The cache generation read before the request (a miss): the answer is stored
    #: only if no invalidation came in between (:func:`hub.calls.cache.store`).
    cache_generation: str | None = None
    #: The idempotency key, under the integration the caller named (a fallback
    #: serving the call stores its result there too).
    key: idempotency.Key | None = None
    #: Integrations of this call that did not serve it, and why (failover).
    skipped: list[failover.Skip] = field(default_factory=list)
    #: The fallbacks of the integration the caller named, read on first need.
    candidates: failover.Candidates | None = None
    #: The dead letter this call replays (``hub dlq replay``), if it is a replay.
    replay_of: str | None = None
    #: Events of this call (and of the integrations failing over for it), published
    #: together when it ends: one Redis round trip.
    outbox: events.Batch = field(default_factory=events.Batch)
    #: Whether ``number`` already counts the task's audited attempts.
    counted: bool = False
    #: The attempt's ``sending`` audit row, committed before its first write left and
    #: updated with its outcome (issue 9 item 2).
    log_id: uuid.UUID | None = None
    #: A request of this attempt has left and its answer has not arrived yet.
    in_flight: bool = False
    #: Hold and breaker state read before the call (:mod:`hub.calls.preflight`).
    preflight: Preflight | None = None

    def __post_init__(self) -> None:
        if self.key is None and self.request.idempotency_key:
            self.key = idempotency.Key(self.request.tenant, self.target.row.id,
                                       self.request.idempotency_key)

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


# --- entry point --------------------------------------------------------------------

def execute_call(services: Services, request: CallRequest, attempt: int = 1,
                 task_id: str | None = None, *, replay_of: str | None = None,
                 preflight: Preflight | None = None) -> CallOutcome:
    """Run one attempt of ``request``. Never raises a HubError: failures are outcomes.

    ``attempt`` is how many times the caller has run this call (Celery retries + 1),
    waits for a quota or a busy idempotency key included. With a ``task_id`` the
    attempt number is counted from the task's audited attempts instead (a retry
    resent from PostgreSQL keeps its number, a wait is no attempt: issue 9 item 7);
    ``attempt`` then only bounds the retries of internal errors, which are not
    audited. ``replay_of`` is the dead letter a ``hub dlq replay`` sent this call
    for: like a retry, a replay waits for an open circuit instead of failing.
    The task's audited attempts are counted where this attempt is audited (the
    INSERT of a success counts them itself), not by a query before it.
    ``preflight``: what the task read from Redis for this call before it ran
    (:func:`hub.calls.preflight.read`); without it each step reads its own. The
    counter it incremented (the task's receives) is deleted in the round trip that
    publishes the call's events when the outcome is final (not ``retry``: a retry
    the broker refuses must stay counted); ``counter_forgotten`` says it was.
    """
    if preflight is not None and (preflight.tenant, preflight.integration) != (
            request.tenant, request.integration):
        preflight = None
    try:
        check_input(request)
        target = resolve(services, request, preflight)
        params = validate_params(target, request.params)
        run = Attempt(replace(request, params=params), target,
                      1 if task_id is not None else attempt, task_id, replay_of=replay_of,
                      preflight=preflight)
        try:
            outcome = _run(services, run)
        except BaseException:
            run.outbox.flush(services.events)
            raise
        forget = None if preflight is None or outcome.status == "retry" \
            else preflight.counter_key
        if run.outbox.flush(services.events, forget=forget) and forget is not None:
            outcome = replace(outcome, counter_forgotten=True)
        return outcome
    except HubError as exc:
        return CallOutcome("failed", error=exc, attempt=attempt)
    except Exception as exc:  # noqa: BLE001 - a bug or an outage below us must not lose the call
        if database_unavailable(exc):
            return _database_down(services, request, exc, attempt, task_id)
        return _unexpected(request, exc, attempt, task_id)


#: PostgreSQL down, unreachable, restarting, or a statement or lock bound hit
#: (HUB_DB_STATEMENT_TIMEOUT, HUB_DB_LOCK_TIMEOUT): the server's state, not the call's.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
    psycopg.OperationalError, psycopg.InterfaceError)
#: First wait of a call that met a PostgreSQL outage; doubled per attempt, each wait at
#: most HUB_MAX_COUNTDOWN (a Celery countdown: the call waits in the broker, since
#: PostgreSQL, where longer waits are kept, is what is down). With the default 5
#: attempts and 60 s: 10, 20, 40, 60 s, so an outage of about 2 minutes is ridden out.
DATABASE_RETRY_BASE = 10.0


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says PostgreSQL cannot take work now (see DATABASE_UNAVAILABLE)."""
    return isinstance(exc, DATABASE_UNAVAILABLE)


def _database_down(services: Services, request: CallRequest, exc: Exception, attempt: int,
                   task_id: str | None) -> CallOutcome:
    """PostgreSQL failed this attempt (the integration could not even be read, or an
    audit row or claim could not be written). Retried with waits long enough to ride
    out a restart, each a Celery countdown (nothing written to PostgreSQL), bounded by
    the usual attempts; then dead-lettered like any exhausted call. A write never
    leaves before its ``sending`` row is committed, so an outage before that means
    nothing was sent; after it, the idempotency claim decides as for a lost worker."""
    policy = RetryPolicy()
    error = RetryableError(f"database unavailable ({type(exc).__name__})",
                           details={"internal": True})
    if policy.exhausted(attempt):
        log.error("call %s/%s.%s (task %s): PostgreSQL unavailable (%s) at attempt %d, "
                  "the last", request.tenant, request.integration, request.operation,
                  task_id, type(exc).__name__, attempt)
        return CallOutcome("exhausted", error=error, attempt=attempt,
                           reason="database_unavailable")
    ceiling = min(DATABASE_RETRY_BASE * 2 ** (attempt - 1),
                  float(services.settings.max_countdown))
    delay = ceiling * (0.8 + 0.2 * random.random())
    log.warning("call %s/%s.%s (task %s): PostgreSQL unavailable (%s); attempt %d again "
                "in %.0fs", request.tenant, request.integration, request.operation, task_id,
                type(exc).__name__, attempt + 1, delay)
    return CallOutcome("retry", error=error, delay=delay, attempt=attempt + 1,
                       reason="database_unavailable")


def _unexpected(request: CallRequest, exc: Exception, attempt: int,
                task_id: str | None) -> CallOutcome:
    """An error the pipeline did not foresee (a bug): retried like a network error,
    then dead-lettered. Logged by type only: its text or traceback may carry a URL or
    header we have not redacted."""
    log.error("call %s/%s.%s (task %s) failed unexpectedly: %s", request.tenant,
              request.integration, request.operation, task_id, type(exc).__name__)
    error = RetryableError(f"internal error ({type(exc).__name__})",
                           details={"internal": True})
    policy = RetryPolicy()
    if policy.exhausted(attempt):
        return CallOutcome("exhausted", error=error, attempt=attempt)
    return CallOutcome("retry", error=error, delay=policy.next_delay(attempt),
                       attempt=attempt + 1, reason="internal_error")


def _run(services: Services, run: Attempt) -> CallOutcome:
    claim = _claim(services, run)
    if claim is not None:
        return claim
    return _run_claimed(services, run)


def _run_claimed(services: Services, run: Attempt) -> CallOutcome:
    try:
        outcome = _through_provider(services, run)
    except HubError as exc:
        if _lost_in_flight(run, exc):
            return _answer_lost(services, run, idempotency.Sent(run.task_id, None, run.log_id),
                                cause=exc.message)
        served = _fail_over(services, run, exc)
        if served is not None:
            return served
        if isinstance(exc, CircuitOpen):
            return _circuit_open(services, run, exc)
        return _fail(services, run, exc)
    if outcome.status != "success" and isinstance(outcome.error, RateLimited):
        # Our own quota for it is spent (check_quota audited it): the next one may serve.
        return _fail_over(services, run, outcome.error, audited=True) or outcome
    return outcome


# --- writes whose answer was lost ------------------------------------------------------

def _lost_in_flight(run: Attempt, exc: HubError) -> bool:
    """A keyed write that may not be re-sent failed while its request was out (a read
    timeout, a connection broken after it left): the provider may have done it."""
    return run.in_flight and isinstance(exc, RetryableError) and run.key is not None \
        and run.log_id is not None and not resend_safe(run.target) \
        and not http.never_left(exc)


def _answer_lost(services: Services, run: Attempt, sent: idempotency.Sent, *,
                 cause: str) -> CallOutcome:
    """End a keyed write whose earlier sending may have reached the provider (issue 9
    item 2): never re-sent blindly. In one transaction the key becomes ``unknown``,
    the request's audit row ``outcome_unknown``, and the call an OUTCOME_UNKNOWN dead
    letter saying what was sent and when, for an operator to reconcile (then replay
    or purge it), with ``integration.supervisor.alert`` for an operation that asks for
    it. Repeats of the key fail with OUTCOME_UNKNOWN meanwhile."""
    assert run.key is not None
    error = _unknown_error(services, run, sent, cause=cause)
    with services.sessions() as session, session.begin():
        if not idempotency.settle_unknown(session, run.key, sent):
            return CallOutcome("failed", error=error, attempt=run.number)  # settled already
        audit.mark_unknown(session, log_id=sent.log_id, error=cause)
        run.log_id = None
        letter = deadletters.record(
            session, origin="call", task_name="hub.call", kwargs=run.request.as_kwargs(),
            tenant_id=run.request.tenant, integration=run.request.integration,
            error_code=error.code, error=error.message, attempts=run.number,
            task_id=sent.task_id or run.task_id)
        deadletters.announce_after_commit(session, services.events, letter,
                                          alert=run.target.op.alert_on_dead_letter)
    _publish(services, run, "request.failed", code=error.code, error=error.message,
             retryable=False, exhausted=True)
    _metric("outcome_unknown", run)
    return CallOutcome("failed", error=error, attempt=run.number)


def _unknown_error(services: Services, run: Attempt, sent: idempotency.Sent | None, *,
                   cause: str = "", repeat: bool = False) -> OutcomeUnknown:
    """OUTCOME_UNKNOWN naming the request that may have reached the provider (method,
    redacted URL, when, by which task: its audit row) and what to do about it."""
    row = None
    if sent is not None and sent.log_id is not None:
        with services.sessions() as session:
            row = session.get(IntegrationLog, sent.log_id)
    what = f"{row.method} {row.url}" if row is not None else "the write"
    when = (row.started_at if row is not None else sent.at if sent else None)
    message = (f"{what} was sent at {when.isoformat() if when else 'an unknown time'} "
               f"and its answer was lost ({cause or 'an earlier call with this key'}); it is "
               "not sent again: check with the provider, then `hub dlq replay` it or purge it")
    if repeat:
        message = "an earlier call with this idempotency key: " + message
    details = {"idempotency_key": run.request.idempotency_key,
               "sent_at": when.isoformat() if when else None,
               "task_id": sent.task_id if sent else None,
               "log_id": str(sent.log_id) if sent and sent.log_id else None}
    return OutcomeUnknown(message, details=details)


def _circuit_open(services: Services, run: Attempt, exc: CircuitOpen) -> CallOutcome:
    """An open circuit and no fallback left (issue 9 item 1). A first call fails fast with
    CIRCUIT_OPEN: its caller is there to degrade at once. A retry or a replay was
    already accepted as work the hub owes: it waits for the circuit (re-scheduled
    for when it half-opens, counted as an attempt) and, when its attempts run out,
    is dead-lettered like any other exhausted call, never dropped."""
    _ensure_counted(services, run)
    waits = run.number > 1 or run.replay_of is not None
    return _fail(services, run, exc, outcome="circuit_open", retryable=waits)


def _through_provider(services: Services, run: Attempt) -> CallOutcome:
    cached = _cache_lookup(services, run)
    if cached is not None:
        return cached
    if failover.unhealthy(run.target.row):
        # Beat's health check found it failing: skip it without sending, but only for a
        # healthy fallback (when all are degraded, the preferred one is still tried).
        # The reason is the status: "degraded" (an error answer) or "down" (none).
        healthy = _next_attempt(services, run, run.target.row.health_status,
                                healthy_only=True)
        if healthy is not None:
            return _run_claimed(services, healthy)
    waiting = check_quota(services, run)
    if waiting is not None:
        return waiting
    pre = run.preflight
    read = pre.breaker if pre is not None and pre.for_row(run.target.row.id) else None
    data = breaker_for(services, run.target.row).call_read(read, _exchange, services, run)
    return _succeed(services, run, data)


# --- resolve and validate -----------------------------------------------------------

#: Longest identifiers, as long as the columns that store them (models.py).
IDENTIFIER_LIMITS: dict[str, int | None] = {
    "tenant": getattr(IntegrationLog.tenant_id.type, "length", None),
    "integration": getattr(Integration.name.type, "length", None),
    "operation": getattr(IntegrationLog.operation.type, "length", None),
    "idempotency_key": getattr(IntegrationLog.idempotency_key.type, "length", None),
}


def check_input(request: CallRequest) -> None:
    """Refuse input no retry can fix, before it reaches PostgreSQL: identifiers that
    are not non-empty strings, are longer than their column, or hold what PostgreSQL
    cannot store (a NUL character, a lone surrogate), and params holding the latter.

    Raises ValidationError naming the field, never quoting its value.
    """
    for name, limit in IDENTIFIER_LIMITS.items():
        value = getattr(request, name)
        if name == "idempotency_key" and value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValidationError(f"{name} must be a non-empty string")
        if limit is not None and len(value) > limit:
            raise ValidationError(f"{name} is longer than {limit} characters")
        if not pgtext.storable(value):
            raise ValidationError(f"{name} contains a NUL character or a lone surrogate")
    refused = pgtext.refused_field(request.params, "params")
    if refused is not None:
        raise ValidationError(f"{refused} contains a NUL character or a lone surrogate")


def resolve(services: Services, request: CallRequest,
            preflight: Preflight | None = None) -> Target:
    """The tenant's active integration (from this process's memory while unchanged,
    :func:`hub.calls.integrations.resolve_active`) and its adapter operation.

    Raises NotFound (unknown integration, adapter or operation), IntegrationDisabled,
    ValidationError (bad on_rate_limit).
    """
    if request.on_rate_limit not in RATE_LIMIT_MODES:
        raise ValidationError(f"on_rate_limit must be one of {', '.join(RATE_LIMIT_MODES)}")
    if request.timeout is not None and not (
            isinstance(request.timeout, (int, float)) and request.timeout > 0):
        raise ValidationError("timeout must be a positive number of seconds")
    if preflight is not None:
        row = integrations.resolve_active(services, request.tenant, request.integration,
                                          preflight.generation)
    else:
        row = integrations.resolve_active(services, request.tenant, request.integration)
    adapter = adapters.get(row.adapter)
    op = adapter.operation(request.operation)
    if op.requires_idempotency_key and not request.idempotency_key:
        raise ValidationError(f"{adapter.name}.{op.name} is a write that must never run twice: "
                              "it needs an idempotency_key")
    return Target(row, adapter, op)


def validate_params(target: Target, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against the operation's JSON Schema. Raises ValidationError."""
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError("params must be a JSON object")
    value = dict(params or {})
    target.adapter.validate(target.op, value)
    return value


#: Audit outcomes of an attempt that is over and was not the last one.
ATTEMPT_OUTCOMES = ("failed", "circuit_open", "outcome_unknown")
ORPHANED = "the worker sending this request died before its answer was recorded"


def failed_attempts(session: Session, task_id: str | None) -> int:
    """Attempts of ``task_id`` already audited and over (0 without a task id): failed
    ones, those that met an open circuit and waited for it, and those whose worker
    died mid-request (their ``sending`` rows become ``outcome_unknown`` here, in
    ``session``'s transaction: this run is that task delivered again)."""
    if task_id is None:
        return 0
    return audit.count_attempts(session, task_id, ATTEMPT_OUTCOMES, orphaned=ORPHANED)


# --- idempotency --------------------------------------------------------------------

def _claim(services: Services, run: Attempt) -> CallOutcome | None:
    """None when this attempt may call the provider; else the stored or pending answer,
    or OUTCOME_UNKNOWN for a write whose earlier sending may have reached the provider."""
    key = run.key
    if key is None:
        return None
    stale = float(services.settings.task_time_limit)
    got = idempotency.claim(services.sessions, key, operation=run.request.operation,
                            task_id=run.task_id, stale_after=stale,
                            resend_safe=resend_safe(run.target))
    if got.state == "busy":
        stored = idempotency.wait(services.sessions, key, timeout=IDEMPOTENCY_WAIT)
        if stored is None:
            return CallOutcome("retry", delay=IDEMPOTENCY_RECHECK, attempt=run.number,
                               reason="idempotency_key_busy")
        return CallOutcome("success", result=stored, attempt=run.number)
    if got.state == "done":
        return CallOutcome("success", result=got.result, attempt=run.number)
    if got.state == "unknown" and got.sent is not None:
        return _answer_lost(services, run, got.sent, cause=ORPHANED)
    if got.state == "blocked":
        return CallOutcome("failed", error=_unknown_error(services, run, got.sent, repeat=True),
                           attempt=run.number)
    if got.sent is not None:  # taken over, and re-sending is safe: its row says what it was
        with services.sessions() as session, session.begin():
            audit.mark_unknown(session, log_id=got.sent.log_id, error=ORPHANED)
    return None


def resend_safe(target: Target) -> bool:
    """Whether a write of ``target`` whose answer was lost may be sent again with its
    idempotency key: the operation is idempotent (RFC 9110 §9.2.2), or the provider
    de-duplicates on the Idempotency-Key header (the operation's ``provider_dedup``,
    or the integration's ``config.provider_dedup``: true or a list of operations)."""
    op = target.op
    declared = (target.row.config or {}).get("provider_dedup", False)
    if isinstance(declared, list):
        declared = op.name in declared
    return op.is_idempotent or op.provider_dedup or declared is True


# --- quota ----------------------------------------------------------------------------

def check_quota(services: Services, run: Attempt) -> CallOutcome | None:
    """Count this call against the integration's quotas and any provider-imposed hold.

    None when allowed. Over quota: a ``retry`` outcome for when the window frees
    (not counted as an attempt), or a ``failed`` RATE_LIMITED one when the caller
    asked to fail fast. Emits ``integration.rate_limit.exceeded`` either way.
    """
    wait = _quota_wait(services, run.target.row, run.preflight)
    if wait is None:
        return None
    _publish(services, run, "rate_limit.exceeded", retry_after=round(wait, 3))
    exc = RateLimited(f"integration {run.target.row.name!r} is over its quota; "
                      f"it frees in {wait:.1f}s", retry_after=wait,
                      details={"retry_after": round(wait, 3)})
    _audit(services, run, "rate_limited", error=exc.message)
    _metric("rate_limited", run)
    metrics.record_rate_limited(run.target.row.name)
    if run.request.on_rate_limit == "fail":
        return CallOutcome("failed", error=exc, attempt=run.number)
    return CallOutcome("retry", error=exc, delay=wait, attempt=run.number,
                       reason="rate_limited")


def _quota_wait(services: Services, row: Integration,
                preflight: Preflight | None = None) -> float | None:
    scope = _quota_scope(row)
    if preflight is not None and preflight.for_row(row.id) and preflight.hold_ms is not None:
        held = preflight.hold_ms / 1000.0 if preflight.hold_ms > 0 else 0.0
    else:
        held = _holds(services).held_for(scope)
    if held:
        return held
    limiter = QuotaLimiter(services.redis, services.settings.redis_key("quota") + ":")
    decision = limiter.hit(scope, {"minute": row.rate_limit_per_minute,
                                   "hour": row.rate_limit_per_hour,
                                   "day": row.rate_limit_per_day})
    return None if decision.allowed else decision.retry_after


def _learn_hold(services: Services, run: Attempt, response: requests.Response) -> None:
    _holds(services).learn(_quota_scope(run.target.row), response.status_code,
                           response.headers)


def _quota_scope(row: Integration) -> str:
    return f"{row.tenant_id}:{row.id}"


def _holds(services: Services) -> ProviderHold:
    return ProviderHold(services.redis, services.settings.redis_key("hold") + ":")


# --- failover -------------------------------------------------------------------------

def _fail_over(services: Services, run: Attempt, exc: HubError, *,
               audited: bool = False) -> CallOutcome | None:
    """The call served (or failed) by the next integration of the failover chain
    (:mod:`hub.calls.failover`), or None when ``exc`` is no reason to move on or no
    integration is left. The failed attempt is audited here unless ``audited``."""
    reason = failover.reason_for(exc)
    if reason is None:
        return None
    _scrub_error(exc, run.secrets)
    nxt = _next_attempt(services, run, reason, exc.message)
    if nxt is None:
        return None
    if not audited:
        _record_skipped(services, run, exc, nxt.target.row.name)
    return _run_claimed(services, nxt)


def _next_attempt(services: Services, run: Attempt, reason: str, error: str | None = None, *,
                  healthy_only: bool = False) -> Attempt | None:
    """The call on the next integration to try, remembering why this one did not
    serve; None when none is left (or, ``healthy_only``, no healthy one)."""
    if run.candidates is None:
        run.candidates = failover.Candidates(
            services.sessions, run.target.row, lambda row: _serves(row, run.request))
    tried = [run.target.row.id, *(s.integration_id for s in run.skipped)]
    candidates = run.candidates
    row = candidates.healthy_after(tried) if healthy_only else candidates.next(tried)
    if row is None:
        return None
    adapter = adapters.get(row.adapter)
    log.info("%s did not serve %s (%s); failing over to %s", run.target.row.name,
             run.request.operation, reason, row.name)
    skip = failover.Skip(run.target.row.id, run.target.row.name, reason, error)
    return Attempt(run.request, Target(row, adapter, adapter.operation(run.request.operation)),
                   run.number, run.task_id, key=run.key, skipped=[*run.skipped, skip],
                   candidates=candidates, replay_of=run.replay_of, outbox=run.outbox,
                   counted=run.counted)


def _serves(row: Integration, request: CallRequest) -> bool:
    """Whether ``row``'s adapter has the operation and accepts the call's params."""
    try:
        adapter = adapters.get(row.adapter)
        adapter.validate(adapter.operation(request.operation), dict(request.params))
    except HubError:
        return False
    return True


def _record_skipped(services: Services, run: Attempt, exc: HubError, to: str) -> None:
    """Audit and announce an attempt that failed over (no retry decision: the call
    goes on with ``to``)."""
    outcome = "circuit_open" if isinstance(exc, CircuitOpen) else "failed"
    with services.sessions() as session, session.begin():
        _count_prior_failures(session, run)
        _write_audit(session, run, outcome, error=f"{exc.message}; failing over to {to}")
    _publish(services, run, "request.failed", code=exc.code, error=exc.message,
             retryable=exc.retryable, exhausted=False, failover_to=to)
    _metric(exc.code.lower() if outcome == "failed" else outcome, run)
    if isinstance(exc, CircuitOpen):
        metrics.set_breaker_open(run.target.row.name, True)


# --- cache ------------------------------------------------------------------------------

def _cacheable(run: Attempt) -> bool:
    return run.target.op.cacheable and run.request.cache is not False \
        and run.request.idempotency_key is None


def _cache_lookup(services: Services, run: Attempt) -> CallOutcome | None:
    if not _cacheable(run):
        return None
    entry = cache.lookup(services, run.target.row, run.request.operation, run.request.params,
                         allow_stale=True)
    hit = entry is not None and entry.fresh
    _publish(services, run, "cache.hit" if hit else "cache.miss")
    metrics.record_cache(run.target.row.name, run.request.operation, hit)
    if entry is None or not entry.fresh:
        run.stale = entry
        run.cache_generation = cache.generation(services, run.target.row)
        return None
    row_id = _audit(services, run, "cached", status_code=entry.status_code)
    _metric("cached", run)
    return CallOutcome("success", result=_envelope(run, entry.status_code, entry.data,
                                                   cached=True, log_id=row_id),
                       attempt=run.number, integration=run.target.row.name)


def _cache_store(services: Services, run: Attempt, status: int | None, data: Any) -> Any:
    """Store a 2xx answer; after a 304 refresh the stale entry and return its data."""
    if not _cacheable(run) or run.response is None or status is None:
        return data
    ttl = run.target.adapter.cache_ttl(run.target.op, run.target.row.config or {})
    if status == 304 and run.stale is not None:
        entry = cache.refresh(services, run.target.row, run.request.operation,
                              run.request.params, ttl=ttl, headers=run.response.headers,
                              generation=run.cache_generation)
        return (entry or run.stale).data
    cache.store(services, run.target.row, run.request.operation, run.request.params,
                status_code=status, data=data, headers=run.response.headers, ttl=ttl,
                generation=run.cache_generation)
    return data


# --- the provider request ---------------------------------------------------------------

def _exchange(services: Services, run: Attempt) -> Any:
    """Drive the adapter's exchange (:meth:`hub.adapters.base.Adapter.exchange`):
    send each request it yields, check and parse the answer, send the parsed data
    back; return what the exchange returns. Runs inside the breaker, so a failure
    reported in a 2xx body counts like the HTTP status it stands for. A 304 ends
    the exchange: the stale cached answer is the data (see :func:`_succeed`).
    Every request but the last gets its own audit row as it is answered (each one
    reached, and is billed by, the provider); the last one's is written by
    :func:`_succeed`."""
    steps = run.target.adapter.exchange(run.target.view, run.target.op, run.request.params)
    try:
        out = next(steps)
        while True:
            response = _send(services, run, out)
            if response.status_code == 304:
                steps.close()
                return None
            out = steps.send(_parsed(run, response))
            _audit(services, run, "success", status_code=response.status_code)
    except StopIteration as done:
        return done.value


def _parsed(run: Attempt, response: requests.Response) -> Any:
    """The answer checked (:func:`check_status`) and parsed by the adapter; a hub
    error raised for it carries a redacted excerpt of the body."""
    adapter, op = run.target.adapter, run.target.op
    try:
        check_status(response, adapter.parse_error(op, response.status_code,
                                                   response.headers, response.content)
                     if not 200 <= response.status_code < 300 else None)
        return adapter.parse_response(op, response.status_code, response.headers,
                                      response.content)
    except HubError as exc:
        exc.details.setdefault("body", _excerpt(run, response.content))
        raise


def build_request(run: Attempt, out: OutboundRequest) -> requests.Request:
    """The adapter's request ``out`` as a ``requests.Request`` (not yet authenticated)."""
    headers = {"Accept": "application/json", **out.headers}
    if run.stale is not None and run.stale.etag:
        headers["If-None-Match"] = run.stale.etag  # RFC 9110 §13.1.2 revalidation
    if run.request.idempotency_key and not run.target.op.is_idempotent:
        # Stripe-style: lets a provider that supports it dedupe our own retries.
        headers.setdefault("Idempotency-Key", run.request.idempotency_key)
    files = {name: (part.filename, part.content, part.content_type)
             for name, part in (out.files or {}).items()} or None
    return requests.Request(out.method, out.url, params=out.params or None, headers=headers,
                            json=out.json, data=out.data if out.form is None else out.form,
                            files=files)


def _send(services: Services, run: Attempt, out: OutboundRequest) -> requests.Response:
    """Authenticate, send, and on a 401 re-authenticate once and send once more."""
    strategy = _auth_strategy(services, run)
    response = _send_once(services, run, strategy, out)
    if response.status_code == 401:
        _audit_failed_401(services, run, response)
        strategy.invalidate()
        response = _send_once(services, run, strategy, out)
    return response


def _send_once(services: Services, run: Attempt, strategy: AuthStrategy,
               out: OutboundRequest) -> requests.Response:
    session = http.session_for(str(run.target.row.id), services.settings)
    prepared = session.prepare_request(build_request(run, out))
    strategy.apply(prepared)
    run.outbound = prepared
    run.secrets = _secrets_of(run, prepared)
    if prepared.method not in SAFE_METHODS and run.log_id is None:
        _record_sending(services, run)
    _publish(services, run, "request.sent", method=prepared.method,
             url=redaction.redact_url(prepared.url, run.secrets))
    run.in_flight = True
    run.response = http.send(session, prepared, services.settings, timeout=run.request.timeout,
                             secrets=run.secrets)
    run.in_flight = False
    _learn_hold(services, run, run.response)
    return run.response


def _record_sending(services: Services, run: Attempt) -> None:
    """Commit the attempt's ``sending`` audit row (and mark its idempotency claim sent)
    before its first write leaves, so every request that may reach a provider is in
    the audit trail and a redelivered task knows it may have (issue 9 item 2).

    This commit must stay synchronous and ahead of the send, whatever batching the
    other audit writes get: a row written after the request left is lost with the
    worker. Raises Conflict when another task took the idempotency key over.
    """
    if run.key is None:
        # Nothing else to write with it: one synchronously committed statement that
        # also counts the task's earlier attempts (its row carries the number).
        row = audit.values(_attempt_record(run, "sending"),
                           cost_per_call=run.target.row.cost_per_call or Decimal(0))
        number = audit.insert_sending(services.durable_writes, row,
                                      counted=() if run.counted else ATTEMPT_OUTCOMES,
                                      orphaned=ORPHANED)
        run.counted = True
        if number != run.number:
            run.number = number
            run.outbox.update_data(attempt=number)
        run.log_id = uuid.UUID(str(row["id"]))
        return
    with services.sessions() as session, session.begin():
        _count_prior_failures(session, run)  # its row carries the attempt's number
        log_id = _write_audit(session, run, "sending")
        if run.key is not None and not idempotency.mark_sent(session, run.key, run.task_id,
                                                             log_id):
            raise Conflict("another task took this idempotency key over; not sending")
    run.log_id = log_id


def _auth_strategy(services: Services, run: Attempt) -> AuthStrategy:
    credentials = integrations.cached_credentials(services, run.target.row)
    run.secrets = redaction.secret_values(credentials)
    return auth.strategy_for(services, run.target.row, credentials)


def _secrets_of(run: Attempt, prepared: requests.PreparedRequest) -> list[str]:
    """Known secret values: stored credentials plus whatever auth put in headers."""
    values = set(run.secrets)
    for name, value in prepared.headers.items():
        if redaction.is_sensitive_name(name) and value:
            text = value if isinstance(value, str) else value.decode("latin-1")
            values.add(text)
            values.add(text.split(" ", 1)[-1])
    return sorted(v for v in values if len(v) >= redaction.MIN_SECRET_LENGTH)


def check_status(response: requests.Response, refined: HubError | None = None) -> None:
    """Raise the hub error a non-2xx provider answer means (2xx and 304 pass).

    ``refined`` is the adapter's reading of the error body
    (:meth:`~hub.adapters.base.Adapter.parse_error`); it wins, with the answer's
    Retry-After when it is retryable and names no delay of its own. Otherwise
    401/403: AuthError. 429: RateLimited, 5xx: RetryableError (both retried, with
    the Retry-After delay). Any other 4xx (or 3xx not followed): UpstreamError, final.
    """
    status = response.status_code
    if 200 <= status < 300 or status == 304:
        return
    details = {"status_code": status}
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if refined is not None:
        refined.details.setdefault("status_code", status)
        if isinstance(refined, RetryableError) and refined.retry_after is None:
            refined.retry_after = retry_after
        raise refined
    if status == 429:
        # Not a sign of an unhealthy provider: RateLimited does not count for the breaker.
        raise RateLimited("provider answered 429 (its rate limit)", details=details,
                          retry_after=retry_after)
    if is_retryable_status(status):
        raise RetryableError(f"provider answered {status}", details=details,
                             retry_after=retry_after)
    if status in (401, 403):
        raise AuthError(f"provider refused our credentials ({status})", details=details)
    raise UpstreamError(f"provider answered {status}", details=details)


# --- outcomes -------------------------------------------------------------------------

def _succeed(services: Services, run: Attempt, data: Any) -> CallOutcome:
    """Record a served call. ``data`` is what the exchange returned (None after a
    304: the stale entry's data is served). An operation the adapter answered
    without the provider has no response and no status code."""
    response = run.response
    status_code = response.status_code if response is not None else None
    stale = run.stale if status_code == 304 else None
    data = _cache_store(services, run, status_code, _transform(run, data))
    status = stale.status_code if stale is not None else status_code
    _invalidate_stale_reads(services, run)
    if run.key is None:
        log_id = _audit(services, run, "success", status_code=status_code)
        result = _envelope(run, status, data, cached=stale is not None, log_id=log_id)
    else:
        # The stored result of a keyed write and its audit row commit together,
        # durably: a repeat must find the one when the other exists.
        with services.sessions() as session, session.begin():
            _count_prior_failures(session, run)
            log_id = _write_audit(session, run, "success", status_code=status_code)
            result = _envelope(run, status, data, cached=stale is not None, log_id=log_id)
            idempotency.complete(session, run.key, result)
    _publish(services, run, "request.completed", status_code=status_code,
             log_id=str(log_id), duration_ms=run.elapsed_ms())
    _metric("success", run)
    metrics.set_breaker_open(run.target.row.name, False)
    return CallOutcome("success", result=result, attempt=run.number,
                       integration=run.target.row.name)


def _transform(run: Attempt, data: Any) -> Any:
    if run.target.op.response_map and data is not None:
        data = transform.apply(run.target.op.response_map, data)
    return _scrub(data, run.secrets)


def _invalidate_stale_reads(services: Services, run: Attempt) -> None:
    """A write declaring ``invalidates`` drops the integration's cached answers that
    name the same value of that param (seed 004: a write to a spreadsheet makes its
    cached reads stale). Before the audit commit, so the caller who sees the
    result never reads the old cache afterwards."""
    name = run.target.op.invalidates
    if name is None or run.request.params.get(name) in (None, ""):
        return
    cache.invalidate(services, run.request.tenant, run.target.row.id,
                     param_value=run.request.params[name], sweep=False)


def _fail(services: Services, run: Attempt, exc: HubError, *, outcome: str = "failed",
          retryable: bool | None = None) -> CallOutcome:
    """Audit the failed attempt and decide: retry later, give up, or final failure.

    ``outcome`` names the attempt in the audit (e.g. circuit_open) unless it was the
    last one (dead_lettered); ``retryable`` overrides the error's own retry decision
    (a retry meeting an open circuit waits for it).
    """
    _scrub_error(exc, run.secrets)
    _ensure_counted(services, run)
    retryable = exc.retryable if retryable is None else retryable
    policy = RetryPolicy.from_config(run.target.row.config)
    exhausted = retryable and policy.exhausted(run.number)
    metric = exc.code.lower() if outcome == "failed" else outcome
    _record_failure(services, run, exc, "dead_lettered" if exhausted else outcome,
                    retryable=retryable, exhausted=exhausted)
    _metric(metric, run)
    if not retryable:
        return CallOutcome("failed", error=exc, attempt=run.number)
    if exhausted:
        return CallOutcome("exhausted", error=exc, attempt=run.number,
                           alert=run.target.op.alert_on_dead_letter)
    delay = policy.next_delay(run.number, getattr(exc, "retry_after", None))
    return CallOutcome("retry", error=exc, delay=delay, attempt=run.number + 1,
                       reason="circuit_open" if isinstance(exc, CircuitOpen) else "retryable")


def _record_failure(services: Services, run: Attempt, exc: HubError, outcome: str, *,
                    retryable: bool, exhausted: bool) -> None:
    """Audit row (and the idempotency key freed when the call is over), event, gauge."""
    with services.sessions() as session, session.begin():
        _write_audit(session, run, outcome, error=exc.message)
        if run.key is not None and (exhausted or not retryable):
            idempotency.release(session, run.key, run.task_id)
    _publish(services, run, "request.failed", code=exc.code, error=exc.message,
             retryable=retryable, exhausted=exhausted)
    if isinstance(exc, CircuitOpen):
        metrics.set_breaker_open(run.target.row.name, True)


def _count_prior_failures(session: Session, run: Attempt) -> None:
    """Raise ``run.number`` to one more than the attempts audited for its task (issue 9
    item 7), once per call: where an attempt is audited in a transaction anyway, or
    fails (a success without idempotency key counts them in its own INSERT)."""
    if not run.counted:
        run.number = max(run.number, failed_attempts(session, run.task_id) + 1)
        run.counted = True
        run.outbox.update_data(attempt=run.number)


def _ensure_counted(services: Services, run: Attempt) -> None:
    """:func:`_count_prior_failures` in a session of its own, when it is needed."""
    if run.task_id is not None and not run.counted:
        # A transaction: counting turns the task's orphaned `sending` rows into
        # outcome_unknown (failed_attempts).
        with services.sessions() as session, session.begin():
            _count_prior_failures(session, run)


def _audit_failed_401(services: Services, run: Attempt, response: requests.Response) -> None:
    with services.sessions() as session, session.begin():
        _count_prior_failures(session, run)
        _write_audit(session, run, "failed", status_code=401,
                     error="provider answered 401; re-authenticating once")
    # The re-sent request is an attempt of its own: its row starts (and is timed) now.
    run.number += 1
    run.started_at, run.started = utcnow(), time.monotonic()


def _envelope(run: Attempt, status: int | None, data: Any, *, cached: bool,
              log_id: uuid.UUID | None) -> dict[str, Any]:
    envelope = {"ok": True, "status_code": status, "data": data, "cached": cached,
                "integration": run.target.row.name, "operation": run.request.operation,
                "attempts": run.number, "log_id": str(log_id) if log_id else None}
    if run.skipped:  # another integration served: say which did not, and why
        envelope["failover"] = [s.as_dict() for s in run.skipped]
    return envelope


# --- audit, events, metrics --------------------------------------------------------------

def _audit(services: Services, run: Attempt, outcome: str, **extra: Any) -> uuid.UUID:
    """An audit row on its own (a success without idempotency key, a cache hit, a quota
    refusal): one INSERT committed asynchronously (:func:`hub.platform.db.
    make_async_commit_engine`), which also counts the task's earlier failed attempts.

    Durable when: at once against a worker crash (committed in the server); against
    a crash of PostgreSQL itself, once the WAL is flushed (<= 0.6 s), or as soon as
    any later synchronous commit is, such as the call's result stored by the worker
    before it acknowledges the message. Nothing else depends on such a row; a disk
    flush per call would cost more than the row is worth.
    """
    cost = run.target.row.cost_per_call or Decimal(0)
    if run.log_id is not None:  # a write without key: its `sending` row gets the outcome
        sending, run.log_id = run.log_id, None
        record = _attempt_record(run, outcome, **extra)
        audit.finish_committing(services.async_writes, sending, record, cost_per_call=cost)
        _record_cost(run, audit.estimated_cost(outcome, record.reached_provider, cost))
        return sending
    row = audit.values(_attempt_record(run, outcome, **extra), cost_per_call=cost)
    number = audit.insert_counting_attempts(services.async_writes, row,
                                            counted=() if run.counted else ATTEMPT_OUTCOMES)
    if number != run.number:
        run.number = number
        run.outbox.update_data(attempt=number)
    _record_cost(run, row["estimated_cost"])
    return uuid.UUID(str(row["id"]))


def _write_audit(session: Any, run: Attempt, outcome: str, *, status_code: int | None = None,
                 error: str | None = None) -> uuid.UUID:
    """The attempt's audit row in ``session`` (committed with its transaction); returns
    its id. The ``sending`` row already committed for the attempt is given the
    outcome, and the idempotency claim's sent mark goes with it (the answer is in)."""
    record = _attempt_record(run, outcome, status_code=status_code, error=error)
    cost = run.target.row.cost_per_call or Decimal(0)
    if run.log_id is None or outcome == "sending":
        log_id = audit.write(session, record, cost_per_call=cost).id
    else:
        sending, run.log_id = run.log_id, None
        if run.key is not None and outcome != "outcome_unknown":
            idempotency.clear_sent(session, run.key, run.task_id)
        log_id = audit.finish(session, sending, record, cost_per_call=cost)
    if outcome != "sending":
        _record_cost(run, audit.estimated_cost(outcome, record.reached_provider, cost))
    return log_id


def _record_cost(run: Attempt, cost: Decimal | None) -> None:
    if cost:
        metrics.record_cost(run.request.tenant, run.target.row.name, cost)


def _attempt_record(run: Attempt, outcome: str, *, status_code: int | None = None,
                    error: str | None = None) -> audit.Attempt:
    out, resp = run.outbound, run.response
    return audit.Attempt(
        tenant_id=run.request.tenant, integration_id=run.target.row.id,
        operation=run.request.operation, outcome=outcome, started_at=run.started_at,
        attempt=run.number, method=out.method if out else None, url=out.url if out else None,
        request_headers=dict(out.headers) if out else None,
        request_body=out.body if out and isinstance(out.body, (bytes, str)) else None,
        response_headers=dict(resp.headers) if resp is not None else None,
        response_body=resp.content if resp is not None else None,
        status_code=status_code or (resp.status_code if resp is not None else None),
        error=error, task_id=run.task_id, idempotency_key=run.request.idempotency_key,
        duration_ms=run.elapsed_ms(), reached_provider=resp is not None,
        secrets=run.secrets,
        sensitive_fields=tuple((run.target.row.config or {}).get("sensitive_fields", ())),
        failover_from=run.request.integration if run.skipped else None,
        failover_reason="; ".join(str(s) for s in run.skipped) or None,
    )


def _publish(services: Services, run: Attempt, event_type: str, **data: Any) -> None:
    """Add an event of this call; they go out in one round trip when it ends."""
    payload = {"integration": run.target.row.name, "operation": run.request.operation,
               "task_id": run.task_id, "attempt": run.number, **data}
    run.outbox.add(event_type, run.request.tenant, payload)


def _metric(outcome: str, run: Attempt) -> None:
    metrics.record_call(run.target.row.name, run.request.operation, outcome,
                        time.monotonic() - run.started)


# --- redaction helpers -----------------------------------------------------------------

def _excerpt(run: Attempt, content: bytes) -> str | None:
    fields = tuple((run.target.row.config or {}).get("sensitive_fields", ()))
    return redaction.redact_body(content, fields=fields, secrets=run.secrets,
                                 limit=ERROR_EXCERPT)


def _scrub(data: Any, secrets: list[str]) -> Any:
    """``data`` with any known secret value masked (a provider echoing our key)."""
    if not secrets or data is None:
        return data
    dumped = json.dumps(data)
    if not any(s in dumped for s in secrets):
        return data
    return json.loads(redaction.redact_text(dumped, secrets) or "null")


def _scrub_error(exc: HubError, secrets: list[str]) -> None:
    """Mask known secret values in the error's message and details (e.g. the URL of a
    failed request carrying a query-parameter key), which callers and audit see."""
    if secrets:
        exc.message = redaction.redact_text(exc.message, secrets) or ""
        exc.args = (exc.message,)
        exc.details = _scrub(exc.details, secrets)


# --- what the task does with an outcome ----------------------------------------------------

def defer_retry(services: Services, *, task_name: str, kwargs: dict[str, Any], delay: float,
                task_id: str | None, tenant: str | None, reason: str | None) -> bool:
    """Keep a retry whose wait is longer than ``settings.max_countdown`` in PostgreSQL.

    Beat's ``hub.maintenance.enqueue_due`` sends it under the same ``task_id`` when it
    falls due (DESIGN §4: a long countdown on a Redis broker is redelivered again and
    again, celery#2599); the row is committed before this returns True. A short wait
    stores nothing and returns False: the task retries with a Celery countdown.
    """
    if delay <= services.settings.max_countdown:
        return False
    with services.sessions() as session, session.begin():
        scheduler.schedule(session, task_name, kwargs,
                           due_at=utcnow() + timedelta(seconds=delay),
                           queue=services.settings.queue("calls"), tenant_id=tenant,
                           reason=reason, task_id=task_id)
    return True


def dead_letter(services: Services, *, task_name: str, kwargs: dict[str, Any],
                outcome: CallOutcome, task_id: str | None) -> DeadLettered:
    """Send the exhausted call to ``hub.dead_letter.record`` on the dead_letter queue and
    return the DEAD_LETTERED error the task fails with. An operation declared
    ``alert_on_dead_letter`` also gets ``integration.supervisor.alert`` once recorded.

    When the broker refuses the message the dead letter is written directly, so it is
    never lost.
    """
    last = outcome.error
    fields: dict[str, Any] = {"origin": "call", "task_name": task_name, "kwargs": kwargs,
                              "tenant_id": kwargs.get("tenant"),
                              "integration": kwargs.get("integration"),
                              "error_code": last.code if last else None,
                              "error": last.message if last else None,
                              "attempts": outcome.attempt, "task_id": task_id,
                              "alert": outcome.alert}
    error = DeadLettered(
        f"{task_name} gave up after {outcome.attempt} attempt(s): "
        f"{last.message if last else 'unknown error'}",
        details={"attempts": outcome.attempt, "last_error": last.envelope()["error"]
                 if last else None})
    message = dict(fields)
    if outcome.reason == "database_unavailable" and task_id is not None:
        # Given up during a PostgreSQL outage: the task's own failure cannot be stored
        # (the result backend is PostgreSQL), so the recorder, which waits for
        # PostgreSQL in the broker, stores it with the letter (tasks/deadletter.py).
        message["caller_failure"] = error.envelope()
    try:
        services.dispatcher.send("hub.dead_letter.record", message,
                                 queue=services.settings.queue("dead_letter"))
    except Exception:  # any broker failure: keep the dead letter anyway
        log.warning("dead_letter queue unavailable; recording %s directly", task_id,
                    exc_info=True)
        deadletters.record_and_announce(services, **fields)
    return error
