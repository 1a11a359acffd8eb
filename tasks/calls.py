"""``hub.call`` and one task per adapter operation (``hub.<adapter>.<operation>``).

Thin: decode the arguments, run one attempt of the pipeline (hub.calls.pipeline), map its
outcome: a result, a retry (a countdown up to HUB_MAX_COUNTDOWN, PostgreSQL
beyond), a dead letter, or a failure whose first argument is the envelope.
``CallFailed`` is declared in ``throws``: an expected failure (NOT_FOUND,
UPSTREAM_ERROR...) is one INFO line in the worker's log, not an ERROR traceback.
"""

from __future__ import annotations

import threading
from typing import Any, NoReturn

from celery.exceptions import Ignore, Retry

from hub import adapters
from hub.calls import pipeline, preflight
from hub.calls.pipeline import CallFailed, CallOutcome
from hub.ops import guardrails
from hub.platform.dispatch import REPLAY_HEADER
from hub.platform.errors import HubError
from tasks.app import app, services
from tasks.base import HubTask


def _finish(task: Any, outcome: CallOutcome, kwargs: dict[str, Any]) -> dict[str, Any]:
    if outcome.status == "success":
        return outcome.result or {}
    svc = services()
    if outcome.status == "retry":
        _retry(task, svc, outcome, kwargs)
    error = outcome.failure()
    if outcome.status == "exhausted":
        error = pipeline.dead_letter(svc, task_name=task.name, kwargs=kwargs, outcome=outcome,
                                     task_id=task.request.id)
        if outcome.reason == "database_unavailable":
            # PostgreSQL cannot take the FAILURE now: the dead letter's recorder stores
            # it once PostgreSQL is back. Acknowledged without a result write, which
            # would fail and leave the message unacknowledged in the worker.
            raise Ignore()
    raise CallFailed(error.envelope())


def _retry(task: Any, svc: Any, outcome: CallOutcome, kwargs: dict[str, Any]) -> NoReturn:
    if not pipeline.defer_retry(svc, task_name=task.name, kwargs=kwargs, delay=outcome.delay,
                                task_id=task.request.id, tenant=kwargs.get("tenant"),
                                reason=outcome.reason):
        raise task.retry(countdown=outcome.delay, max_retries=None)
    # Ends this run in state RETRY without sending a message: beat resends it.
    raise Retry(f"deferred {outcome.delay:.0f}s in PostgreSQL ({outcome.reason})",
                when=outcome.delay)


class CallTask(HubTask):
    """A call task: its receive is counted in the round trip that reads what the call
    needs from Redis (:mod:`hub.calls.preflight`), kept for the body in this thread
    (not on the request: Celery copies the request's attributes into a retry message),
    and forgotten in the round trip of the call's events when its run ends."""

    abstract = True

    def count_receive(self, svc: Any, task_id: str, kwargs: dict[str, Any]) -> int | None:
        read = preflight.read(svc, kwargs.get("tenant"), kwargs.get("integration"),
                              counter=(guardrails.receive_key(svc, task_id),
                                       guardrails.RECEIVE_TTL))
        _read_ahead.value = (task_id, read)
        if read is None:
            return None
        return 0 if read.counter is None else read.counter  # 0: fail open, as counting does

    def receives_forgotten(self, task_id: str) -> bool:
        forgotten = getattr(_read_ahead, "forgotten", None)
        _read_ahead.forgotten = None
        return forgotten == task_id


_read_ahead = threading.local()


def _execute(task: Any, request: pipeline.CallRequest) -> CallOutcome:
    outcome = pipeline.execute_call(services(), request, attempt=task.request.retries + 1,
                                    task_id=task.request.id, replay_of=_replay_of(task),
                                    preflight=_preflight(task))
    if outcome.counter_forgotten:
        _read_ahead.forgotten = task.request.id
    return outcome


def _preflight(task: Any) -> preflight.Preflight | None:
    """What :meth:`CallTask.count_receive` read for this very run (once)."""
    task_id, read = getattr(_read_ahead, "value", (None, None))
    _read_ahead.value = (None, None)
    return read if task_id is not None and task_id == task.request.id else None


def _replay_of(task: Any) -> str | None:
    # Message headers become attributes of the request (hub dlq replay sets this one).
    value = task.request.get(REPLAY_HEADER)
    return str(value) if value else None


@app.task(name="hub.call", bind=True, base=CallTask, max_retries=None, throws=(CallFailed,))
def call(self: Any, tenant: str | None = None, integration: str | None = None,
         operation: str | None = None, params: dict[str, Any] | None = None,
         idempotency_key: str | None = None, cache: bool | None = None,
         timeout: float | None = None, on_rate_limit: str = "wait",
         **unknown: Any) -> dict[str, Any]:
    """Run one operation of one integration (DESIGN §4). ``on_rate_limit="fail"``
    fails at once with RATE_LIMITED instead of waiting for the quota window. Missing
    or unknown arguments fail with VALIDATION_ERROR (defaults here only to say so)."""
    try:
        request = pipeline.new_request(tenant, integration, operation, params,
                                       idempotency_key, cache, timeout, on_rate_limit, unknown)
    except HubError as exc:
        raise CallFailed(exc.envelope()) from None
    kwargs = {"tenant": tenant, "integration": integration, "operation": operation,
              "params": params, "idempotency_key": idempotency_key, "cache": cache,
              "timeout": timeout, "on_rate_limit": on_rate_limit}
    return _finish(self, _execute(self, request), kwargs)


def _operation_task(name: str, operation: str) -> Any:
    def run(self: Any, tenant: str | None = None, integration: str | None = None,
            idempotency_key: str | None = None, **params: Any) -> dict[str, Any]:
        try:
            request = pipeline.new_request(tenant, integration, operation, params,
                                           idempotency_key)
        except HubError as exc:
            raise CallFailed(exc.envelope()) from None
        outcome = _execute(self, request)
        key = {"idempotency_key": idempotency_key} if idempotency_key else {}
        return _finish(self, outcome, {"tenant": tenant, "integration": integration,
                                       **params, **key})

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__doc__ = (f"Operation {operation!r} as its own task (hub.call with fixed operation); "
                   "``idempotency_key`` is hub.call's option, every other keyword a param.")
    return app.task(name=name, bind=True, base=CallTask, max_retries=None,
                    throws=(CallFailed,))(run)


OPERATION_TASKS = {name: _operation_task(name, op)
                   for name, (_adapter, op) in adapters.task_names().items()}
