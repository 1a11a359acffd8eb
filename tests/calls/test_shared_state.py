"""Breaker and quota state shared by two worker processes (threads pool), as in production."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from hub.calls.breaker import breaker_for
from hub.platform.models import IntegrationLog
from tests.calls.fake_provider import Reply
from tests.calls.processes import worker_process

pytestmark = pytest.mark.slow
TIMEOUT = 60


@pytest.fixture(scope="module")
def two_workers(client_app, settings):  # type: ignore[no-untyped-def]
    """Two worker processes of the production pool (threads) on a queue of their own,
    one thread each so that both take part (a thread reserves one message)."""
    queue = settings.queue(f"shared-{uuid.uuid4().hex[:6]}")
    with worker_process(client_app, [queue], pool=settings.worker_pool) as first, \
            worker_process(client_app, [queue], pool=settings.worker_pool) as second:
        yield queue, (first, second)


def _send(client_app, queue, tenant, name, path):  # type: ignore[no-untyped-def]
    return client_app.send_task("hub.call", queue=queue, kwargs={
        "tenant": tenant, "integration": name, "operation": "post", "params": {"path": path}})


def _served_by_both(procs, task_ids) -> bool:  # type: ignore[no-untyped-def]
    logs = [p.log_path.read_text() for p in procs]
    return all(any(t in log for t in task_ids) for log in logs)


def test_breaker_opens_across_workers_and_closes_after_recovery(
        two_workers, client_app, services, tenant, provider, make_integration):
    queue, procs = two_workers
    row = make_integration("flaky", config={
        "retry": {"base": 0.01, "cap": 0.02, "max_attempts": 1},
        "breaker": {"failure_threshold": 4, "recovery_timeout": 2}})
    provider.script("/v1/x", *[Reply(503, delay=0.3) for _ in range(4)])
    failing = [_send(client_app, queue, tenant, "flaky", "/v1/x") for _ in range(4)]
    for result in failing:
        result.get(timeout=TIMEOUT, propagate=False)
    assert provider.hits("/v1/x") == 4
    assert _served_by_both(procs, [r.id for r in failing])
    breaker = breaker_for(services, row)
    assert breaker.state == "open"
    refused = _send(client_app, queue, tenant, "flaky", "/v1/x")
    with pytest.raises(Exception) as caught:
        refused.get(timeout=TIMEOUT)
    assert caught.value.args[0]["error"]["code"] == "CIRCUIT_OPEN"
    assert provider.hits("/v1/x") == 4  # the provider was spared
    deadline = time.monotonic() + 10
    while breaker.retry_after() > 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting out the recovery timeout itself
    trial = _send(client_app, queue, tenant, "flaky", "/v1/x").get(timeout=TIMEOUT)
    assert trial["ok"] and breaker.state == "closed"


def test_quota_is_shared_by_two_workers(two_workers, client_app, sessions, tenant, provider,
                                        make_integration):
    queue, procs = two_workers
    if time.time() % 3600 > 3590:
        time.sleep(3600 - time.time() % 3600 + 0.5)  # keep all calls in one hourly window
    make_integration("metered", rate_limit_per_hour=3)
    provider.script("/v1/m", *[Reply(200, {"ok": 1}, delay=0.2) for _ in range(4)])
    results = [_send(client_app, queue, tenant, "metered", "/v1/m") for _ in range(4)]
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        states = sorted(r.state for r in results)
        if states == ["RETRY", "SUCCESS", "SUCCESS", "SUCCESS"]:
            break
        time.sleep(0.1)
    assert sorted(r.state for r in results) == ["RETRY", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert provider.hits("/v1/m") == 3
    assert _served_by_both(procs, [r.id for r in results])
    waiting = next(r for r in results if r.state == "RETRY")
    with sessions() as s:
        outcomes = s.scalars(select(IntegrationLog.outcome).where(
            IntegrationLog.task_id == waiting.id)).all()
    assert outcomes == ["rate_limited"]


def test_idempotent_write_races_on_two_workers_and_runs_once(two_workers, client_app, tenant,
                                                              provider, make_integration):
    queue, procs = two_workers
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_42"}, delay=0.5))
    kwargs = {"tenant": tenant, "integration": "payments", "operation": "post",
              "params": {"path": "/v1/charges", "json": {"amount": 500}},
              "idempotency_key": "order-42"}
    racing = [client_app.send_task("hub.call", queue=queue, kwargs=kwargs) for _ in range(2)]
    envelopes = [r.get(timeout=TIMEOUT) for r in racing]
    assert _served_by_both(procs, [r.id for r in racing])
    assert provider.hits("/v1/charges") == 1
    assert envelopes[0] == envelopes[1] and envelopes[0]["data"] == {"id": "ch_42"}
    again = client_app.send_task("hub.call", queue=queue, kwargs=kwargs).get(timeout=TIMEOUT)
    assert again == envelopes[0] and provider.hits("/v1/charges") == 1
