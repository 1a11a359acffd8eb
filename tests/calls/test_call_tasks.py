"""hub.call and hub.<adapter>.<operation> through a real worker, sent by name by a
client that imports nothing from the hub. The tests taking ``on_broker`` run on each
broker (Redis, RabbitMQ)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hub.ops import dlq, guardrails
from hub.platform import scheduler
from hub.platform.models import DeadLetter, IntegrationLog, ScheduledTask
from tests.calls.fake_provider import Reply
from tests.calls.polling import wait_for

TIMEOUT = 30


def _call(client_app, tenant, integration, operation, params=None, **options):  # type: ignore[no-untyped-def]
    return client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": integration, "operation": operation,
        "params": params, **options})


def _wait(predicate, what, timeout=TIMEOUT):  # type: ignore[no-untyped-def]
    return wait_for(predicate, what, timeout)


def test_call_returns_the_success_envelope(on_broker, tenant, provider, make_integration):
    make_integration("crm")
    result = _call(on_broker.client, tenant, "crm", "post", {"path": "/v1/tickets",
                                                             "json": {"subject": "hi"}})
    envelope = result.get(timeout=TIMEOUT)
    assert envelope["ok"] is True and envelope["status_code"] == 200
    assert envelope["data"]["json"] == {"subject": "hi"}
    assert (envelope["integration"], envelope["operation"]) == ("crm", "post")


def test_operation_task_by_its_own_name(worker, client_app, tenant, provider, make_integration):
    make_integration("crm")
    result = client_app.send_task("hub.rest.post", args=[tenant, "crm"],
                                  kwargs={"path": "/v1/notes", "json": {"n": 1}})
    envelope = result.get(timeout=TIMEOUT)
    assert envelope["ok"] and envelope["operation"] == "post"
    assert envelope["data"]["path"] == "/v1/notes"


def test_failure_is_state_failure_with_the_envelope(worker, client_app, tenant, provider,
                                                    make_integration):
    make_integration("crm")
    provider.script("/v1/gone", Reply(404))
    result = _call(client_app, tenant, "crm", "post", {"path": "/v1/gone"})
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    envelope = caught.value.args[0]
    assert envelope["ok"] is False and envelope["error"]["code"] == "UPSTREAM_ERROR"
    assert set(envelope["error"]) == {"code", "message", "details"}
    assert result.state == "FAILURE"
    assert provider.hits("/v1/gone") == 1  # a 404 is never retried


_OUTSIDE_CLIENT = textwrap.dedent("""
    import builtins, json, sys
    real_import = builtins.__import__
    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in ("hub", "tasks", "celeryconfig",
                                                 "webhooks_web"):
            raise ImportError("the hub is not installed here: " + name)
        return real_import(name, globals, locals, fromlist, level)
    builtins.__import__ = guarded
    from celery import Celery
    broker, backend, task_id = sys.argv[1:4]
    app = Celery("outside", broker=broker, backend=backend)
    result = app.AsyncResult(task_id)
    exc = result.result
    print(json.dumps({"state": result.state, "type": type(exc).__name__,
                      "envelope": exc.args[0], "info": result.info.args[0],
                      "traceback_has_code": "UPSTREAM_ERROR" in (result.traceback or "")}))
""")


def test_client_without_the_hub_gets_the_envelope(worker, client_app, settings, tenant,
                                                  provider, make_integration):
    make_integration("crm")
    provider.script("/v1/bad", Reply(422, {"error": {"message": "amount must be positive"}}))
    result = _call(client_app, tenant, "crm", "post", {"path": "/v1/bad"})
    result.get(timeout=TIMEOUT, propagate=False)
    out = subprocess.run(
        [sys.executable, "-c", _OUTSIDE_CLIENT, settings.effective_broker_url,
         settings.effective_result_backend, result.id],
        capture_output=True, text=True, timeout=60, cwd="/tmp", check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["state"] == "FAILURE" and seen["type"] == "CallFailed"
    assert seen["envelope"]["error"]["code"] == "UPSTREAM_ERROR"
    assert seen["envelope"]["error"]["details"]["status_code"] == 422
    assert seen["info"] == seen["envelope"] and seen["traceback_has_code"]


def test_short_backoff_retries_by_countdown(worker, client_app, tenant, provider,
                                           make_integration):
    make_integration("crm")
    provider.script("/v1/flaky", Reply(503), Reply(502))
    envelope = _call(client_app, tenant, "crm", "post", {"path": "/v1/flaky"}) \
        .get(timeout=TIMEOUT)
    assert envelope["ok"] and envelope["attempts"] == 3
    assert provider.hits("/v1/flaky") == 3


def test_retries_past_max_receives_are_no_poison_and_leave_no_counter(
        worker, client_app, services, redis_client, tenant, provider, make_integration):
    # Each run that ends (here: in a retry sent, then in a success or a failure) is no
    # unfinished receive: more retries than HUB_MAX_RECEIVES do not dead-letter the call,
    # and the receive counter is gone once the call has its final outcome (that it goes
    # with the call's events: tests/calls/test_preflight.py).
    make_integration("crm", config={"retry": {"base": 0.1, "cap": 0.2}})
    runs = services.settings.max_receives + 2
    provider.script("/v1/flaky", *[Reply(503) for _ in range(runs - 1)])
    provider.script("/v1/gone", Reply(404))
    succeeded = _call(client_app, tenant, "crm", "post", {"path": "/v1/flaky"})
    failed = _call(client_app, tenant, "crm", "post", {"path": "/v1/gone"})
    envelope = succeeded.get(timeout=TIMEOUT)
    assert envelope["ok"] and envelope["attempts"] == runs
    with pytest.raises(Exception) as caught:
        failed.get(timeout=TIMEOUT)
    assert caught.value.args[0]["error"]["code"] == "UPSTREAM_ERROR"
    for result in (succeeded, failed):
        assert not redis_client.exists(guardrails.receive_key(services, result.id))


def _held_by_worker(on_broker, task_id: str) -> bool | None:  # type: ignore[no-untyped-def]
    """Whether the worker holds ``task_id`` for its countdown (None: it did not answer)."""
    answer = on_broker.client.control.inspect(destination=[on_broker.worker],
                                              timeout=1).scheduled()
    if not answer:
        return None
    return any(entry["request"]["id"] == task_id for entry in answer[on_broker.worker])


def test_a_retry_waits_its_countdown_in_the_broker_then_succeeds(on_broker, tenant, provider,
                                                                make_integration):
    make_integration("crm")
    provider.script("/v1/busy", Reply(503, headers={"Retry-After": "4"}))
    result = _call(on_broker.client, tenant, "crm", "post", {"path": "/v1/busy"})
    _wait(lambda: provider.hits("/v1/busy") == 1, "the first attempt")
    answered = time.monotonic()  # the retry is due 4 s after this, or a little later
    _wait(lambda: result.state == "RETRY", "state RETRY")

    if on_broker.name == "redis":
        # A Redis broker hands the retry out at once: the worker holds it until due.
        _wait(lambda: _held_by_worker(on_broker, result.id), "the worker holding the retry")
    else:
        # RabbitMQ keeps it in its delay queues (Celery's native delayed delivery).
        held = None
        while held is None and time.monotonic() - answered < 3:
            held = _held_by_worker(on_broker, result.id)
        assert held is False, "the worker held the retry (or never answered in time)"

    envelope = result.get(timeout=TIMEOUT)
    assert time.monotonic() - answered >= 3  # not before its countdown
    assert envelope["ok"] and envelope["attempts"] == 2
    assert provider.hits("/v1/busy") == 2


def test_long_backoff_lives_in_postgresql_and_runs_once(worker, celery_app, client_app,
                                                       sessions, tenant, provider,
                                                       make_integration):
    from celerydispatch import CeleryDispatcher

    make_integration("slow", config={"retry": {"base": 1, "cap": 10, "max_attempts": 3}})
    # Retry-After of an hour: far beyond HUB_MAX_COUNTDOWN (300 s) and any safe countdown.
    provider.script("/v1/later", Reply(503, headers={"Retry-After": "3600"}))
    result = _call(client_app, tenant, "slow", "post", {"path": "/v1/later"})

    def scheduled():  # type: ignore[no-untyped-def]
        with sessions() as s:
            return s.scalars(select(ScheduledTask).where(
                ScheduledTask.task_id == result.id)).one_or_none()

    row = _wait(scheduled, "the retry stored in scheduled_tasks")
    assert row.status == "pending" and row.task_name == "hub.call"
    assert row.due_at - scheduler.utcnow() > timedelta(minutes=55)
    _wait(lambda: result.state == "RETRY", "state RETRY")
    assert provider.hits("/v1/later") == 1
    # Not due yet: nothing is sent.
    dispatcher = CeleryDispatcher(celery_app)
    assert scheduler.enqueue_due(sessions, dispatcher) == 0
    with sessions() as s, s.begin():
        s.execute(update(ScheduledTask).where(ScheduledTask.id == row.id)
                  .values(due_at=scheduler.utcnow()))
    sent = [scheduler.enqueue_due(sessions, dispatcher) for _ in range(3)]
    assert sum(sent) == 1
    envelope = result.get(timeout=TIMEOUT)  # same task id: the caller sees the outcome
    assert envelope["ok"] and envelope["attempts"] == 2
    assert provider.hits("/v1/later") == 2


def test_exhausted_call_is_dead_lettered_then_replayed(on_broker, sessions, redis_client,
                                                      tenant, provider, make_integration):
    from celerydispatch import CeleryDispatcher

    client_app, settings = on_broker.client, on_broker.settings

    make_integration("crm", config={"retry": {"base": 0.01, "cap": 0.02, "max_attempts": 2}})
    provider.script("/v1/down", Reply(500), Reply(500))
    pubsub = redis_client.pubsub()
    pubsub.subscribe("integration.dead_letter.added")
    _wait(lambda: pubsub.get_message(timeout=0.1), "subscription")
    result = _call(client_app, tenant, "crm", "post", {"path": "/v1/down", "json": {"x": 1}})
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    envelope = caught.value.args[0]
    assert envelope["error"]["code"] == "DEAD_LETTERED"
    assert envelope["error"]["details"]["last_error"]["code"] == "UPSTREAM_ERROR"

    def letter():  # type: ignore[no-untyped-def]
        with sessions() as s:
            return s.scalars(select(DeadLetter).where(DeadLetter.task_id == result.id)) \
                .one_or_none()

    row = _wait(letter, "the dead letter")
    assert (row.origin, row.task_name, row.error_code, row.attempts) == \
        ("call", "hub.call", "UPSTREAM_ERROR", 2)
    assert row.kwargs["params"] == {"path": "/v1/down", "json": {"x": 1}}

    def ours():  # type: ignore[no-untyped-def]
        # Channels are global to the Redis server: other test runs publish on it too.
        message = pubsub.get_message(timeout=0.1)
        return message and json.loads(message["data"])["data"]["task_id"] == result.id

    _wait(ours, "dead_letter.added event")
    pubsub.close()
    with sessions() as s:
        dead_rows = s.scalars(select(IntegrationLog.outcome).where(
            IntegrationLog.task_id == result.id)).all()
    assert sorted(dead_rows) == ["dead_lettered", "failed"]

    # The provider recovered (its script is used up): replay the tenant's letters.
    filters = dlq.Filters(tenant=tenant, include_replayed=False)
    dispatcher = CeleryDispatcher(on_broker.sender)
    dry = dlq.replay(sessions, dispatcher, filters, queue=settings.queue("replay"),
                     dry_run=True)
    assert [d["id"] for d in dry] == [str(row.id)] and provider.hits("/v1/down") == 2
    [replayed] = dlq.replay(sessions, dispatcher, filters,
                            queue=settings.queue("replay"))
    assert dlq.replay(sessions, dispatcher, filters,
                      queue=settings.queue("replay")) == []
    again = client_app.AsyncResult(replayed["replay_task_id"]).get(timeout=TIMEOUT)
    assert again["ok"] and again["data"]["json"] == {"x": 1}
    assert provider.hits("/v1/down") == 3
    with sessions() as s:
        assert letter().replayed_at is not None


@pytest.mark.parametrize("field, value", [
    ("tenant", "\x00"), ("integration", "crm\x00"), ("operation", "po\ud800st"),
    ("idempotency_key", "order\x00-1"), ("params", {"path": "/v1/x", "json": {"n": "\ud800"}}),
    ("params", {"path": "/v1/x", "json": {"a\x00b": 1}}), ("tenant", "t" * 65)])
def test_input_postgresql_cannot_store_is_a_validation_error_at_once(
        worker, client_app, sessions, tenant, provider, make_integration, field, value):
    # Issue 9 item 7: a NUL in the tenant was retried 5 times as an internal error.
    make_integration("crm")
    kwargs = {"tenant": tenant, "integration": "crm", "operation": "post",
              "params": {"path": "/v1/x"}}
    kwargs[field] = tenant + value if field == "tenant" and len(value) == 1 else value
    result = client_app.send_task("hub.call", kwargs=kwargs)

    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)

    error = caught.value.args[0]["error"]
    assert error["code"] == "VALIDATION_ERROR", error
    assert field in error["message"] and "\x00" not in error["message"]
    assert provider.hits() == 0
    with sessions() as s:
        assert s.scalars(select(DeadLetter).where(DeadLetter.task_id == result.id)).all() == []
        assert s.scalars(select(IntegrationLog).where(
            IntegrationLog.task_id == result.id)).all() == []


def test_waiting_on_a_busy_idempotency_key_is_no_attempt(worker, client_app, sessions,
                                                          monkeypatch, tenant, provider,
                                                          make_integration):
    # Issue 9 item 7: each poll of a busy key was a Celery retry counted as an attempt
    # (a call that waited reported "attempts: 41").
    from hub.calls import idempotency, pipeline

    row = make_integration("payments")
    key = idempotency.Key(tenant, row.id, "order-7")
    assert idempotency.claim(sessions, key, operation="post", task_id="another-task",
                             stale_after=3600).state == "owned"
    polls: list[int] = []
    real_wait = idempotency.wait

    def counted_wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        polls.append(1)
        return real_wait(*args, **kwargs)

    # The embedded worker runs in this process: short waits, counted.
    monkeypatch.setattr(idempotency, "wait", counted_wait)
    monkeypatch.setattr(pipeline, "IDEMPOTENCY_WAIT", 0.05)
    monkeypatch.setattr(pipeline, "IDEMPOTENCY_RECHECK", 0.05)
    result = _call(client_app, tenant, "payments", "post", {"path": "/v1/charges"},
                   idempotency_key="order-7")
    _wait(lambda: len(polls) >= 4, "four polls of the busy key")
    with sessions() as s, s.begin():  # the other task gave up: the key is free
        idempotency.release(s, key, "another-task")

    envelope = result.get(timeout=TIMEOUT)

    assert envelope["ok"] and envelope["attempts"] == 1
    assert provider.hits("/v1/charges") == 1


def _envelope_of(result):  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"
    return caught.value.args[0]


def test_missing_or_unknown_arguments_fail_with_the_validation_envelope(worker, client_app,
                                                                         tenant):
    missing = client_app.send_task("hub.call", kwargs={"integration": "crm",
                                                       "operation": "get"})
    envelope = _envelope_of(missing)
    assert envelope["error"]["code"] == "VALIDATION_ERROR"
    assert "tenant is required" in envelope["error"]["message"]

    typo = client_app.send_task("hub.call", kwargs={"tenant": tenant, "integration": "crm",
                                                    "operation": "get", "parms": {}})
    assert "unknown argument(s) parms" in _envelope_of(typo)["error"]["message"]

    by_name = client_app.send_task("hub.rest.get", kwargs={"integration": "crm", "path": "/"})
    assert _envelope_of(by_name)["error"]["code"] == "VALIDATION_ERROR"


def test_an_unknown_operation_has_its_own_code(worker, client_app, tenant, provider,
                                               make_integration):
    make_integration("crm")
    envelope = _envelope_of(_call(client_app, tenant, "crm", "frobnicate"))
    assert envelope["error"]["code"] == "UNKNOWN_OPERATION"
    assert "get" in envelope["error"]["details"]["operations"]
    assert _envelope_of(_call(client_app, tenant, "nope", "get"))["error"]["code"] == "NOT_FOUND"


def test_an_expected_failure_is_one_info_line_without_traceback(worker, client_app, tenant,
                                                                caplog):
    with caplog.at_level("INFO", logger="celery.app.trace"):
        result = _call(client_app, tenant, "nope", "get", {"path": "/"})
        _envelope_of(result)
        records = _wait(lambda: [r for r in caplog.records
                                 if r.name == "celery.app.trace" and result.id in r.getMessage()],
                        "the worker's log line")
    (record,) = records
    assert record.levelname == "INFO" and "raised expected" in record.getMessage()
    assert record.exc_info is None
