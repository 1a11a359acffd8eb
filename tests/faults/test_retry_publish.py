"""A retry the broker refuses to take is not lost (issue 9, "no dropped work").

Celery's ``Task.retry`` publishes the retry message, then ends the run; when that
publish fails it raises ``Reject(requeue=False)``, and the worker acknowledges the
original message: the call was gone, neither retried nor dead-lettered, its result
``PENDING`` for ever. Here the first attempt of a call waits at the provider while the
broker Redis starts refusing writes (``maxmemory`` below its used memory, policy
``noeviction``, as every recipe runs it: a full Redis); the provider answers 503, the
retry cannot be sent, and even taking the message back fails. Once Redis takes writes
again the message comes back (visibility timeout, scaled down here) and the call ends
in success. Real processes: a PostgreSQL cluster and a redis-server of the test's own
(reconfigured, never the machine's), a threads-pool worker as deployed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult
from sqlalchemy import text

from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from tests.calls.fake_provider import FakeProvider, Reply, register
from tests.calls.processes import worker_process
from tests.faults.beat import wait_for
from tests.faults.servers import OwnHub
from tests.faults.servers import own_hub as start_own_hub

pytestmark = pytest.mark.slow

TENANT = "acme"
PATH = "/v1/contacts/42"
#: Scaled down for the test (defaults 300 s, 60 s, 180 s, 10 s); validate() keeps their
#: relation (countdown + time limit below the visibility timeout).
VISIBILITY = 8
SCALED = {"HUB_VISIBILITY_TIMEOUT": str(VISIBILITY), "HUB_MAX_COUNTDOWN": "3",
          "HUB_TASK_TIME_LIMIT": "4", "HUB_TASK_SOFT_TIME_LIMIT": "3",
          "HUB_UNACKED_RESTORE_INTERVAL": "1"}
#: Seconds the broker refuses writes once the provider has answered 503.
FAULT = 2.0


@pytest.fixture
def own_hub() -> Iterator[OwnHub]:
    with start_own_hub(SCALED) as hub:
        yield hub


def _dead_letters(hub: OwnHub, origin: str | None = None) -> int:
    services = Services(hub.settings, RecordingDispatcher())
    try:
        with services.sessions() as session:
            return int(session.execute(
                text("SELECT count(*) FROM dead_letters WHERE origin = coalesce(:o, origin)"),
                {"o": origin}).scalar_one())
    finally:
        services.close()


def _full(broker: redis.Redis) -> Callable[[], None]:
    """Redis is full: every write is refused (OOM under noeviction), reads still answer."""
    used = int(broker.info("memory")["used_memory"])
    broker.config_set("maxmemory", str(used // 2))
    return lambda: broker.config_set("maxmemory", "0")


def _publish_refused(broker: redis.Redis) -> Callable[[], None]:
    """Redis refuses the publish (LPUSH) but takes the acknowledgement (ZREM, HDEL): the
    moment a Redis hovering at maxmemory refuses one write and takes the next after a
    consumer freed memory, made exact with an ACL on the test's own server."""
    broker.execute_command("ACL", "SETUSER", "default", "-lpush")
    return lambda: broker.execute_command("ACL", "SETUSER", "default", "+lpush")


@contextmanager
def _first_attempt_at_the_provider(own_hub: OwnHub, api: FakeProvider) -> Iterator[
        tuple[subprocess.Popen, Path, AsyncResult]]:
    """A threads worker of the test's own hub, and a call it runs whose first attempt is
    now held at the provider: (the worker, its log, the caller's result)."""
    with worker_process(own_hub.client, ["calls"], pool="threads", concurrency=2,
                        app="tasks", env=own_hub.env) as worker:
        result = own_hub.client.send_task("hub.call", queue="calls", kwargs={
            "tenant": TENANT, "integration": "crm", "operation": "get",
            "params": {"path": PATH}, "cache": False})
        wait_for(lambda: api.in_flight == 1, 30, "the first attempt reaches the provider")
        yield worker, Path(worker.log_path), result


@pytest.mark.parametrize("fault", [_full, _publish_refused], ids=["full", "publish-refused"])
def test_a_retry_the_broker_refuses_is_not_lost(own_hub, api, fault):
    register(own_hub.settings, api, TENANT)
    answer = threading.Event()
    # The first attempt is held at the provider, then answered 503; the second gets 200.
    api.script(PATH, Reply(503, headers={"Retry-After": "1"}, hold=answer))
    broker = own_hub.redis.client()
    with _first_attempt_at_the_provider(own_hub, api) as (worker, log, result):
        end_fault = fault(broker)
        try:
            answer.set()  # 503: the worker now sends the retry, which Redis refuses
            wait_for(lambda: "] reject requeue=" in log.read_text(errors="replace"),
                     20, "the worker's retry meets the refusing broker")
            wait_for(lambda: api.in_flight == 0, 10, "the first attempt ends")
            # The fault's length (it outlasts the worker's answer to it), not a wait for
            # something to happen.
            time.sleep(FAULT)
        finally:
            end_fault()
        try:
            envelope = result.get(timeout=VISIBILITY + 25)
        except Exception as exc:  # noqa: BLE001 - the log says why
            raise AssertionError(f"the call did not end in success ({exc!r}):\n"
                                 f"{log.read_text(errors='replace')[-4000:]}") from None
        # The worker rode the fault out (it used to stop: "Unrecoverable error").
        assert worker.poll() is None, log.read_text(errors="replace")[-4000:]
    broker.close()
    assert envelope["status_code"] == 200
    assert api.hits(PATH) == 2
    assert _dead_letters(own_hub) == 0


def test_a_retry_the_broker_always_refuses_ends_as_a_dead_letter(own_hub, api):
    # The loop the requeue could make (run, retry refused, back in the queue, run...) is
    # bounded by the poison-message guardrail: past HUB_MAX_RECEIVES (3) unfinished runs
    # the call is dead-lettered, and its caller gets the DEAD_LETTERED envelope.
    # Backoffs under HUB_MAX_COUNTDOWN (3 s here), so every retry is a broker message:
    # a longer one is kept in PostgreSQL for beat, which this test does not run.
    register(own_hub.settings, api, TENANT, config={"retry": {"base": 0.2, "cap": 1}})
    answer = threading.Event()
    api.script(PATH, Reply(503, hold=answer), *[Reply(503) for _ in range(10)])
    broker = own_hub.redis.client()
    with _first_attempt_at_the_provider(own_hub, api) as (worker, log, result):
        end_fault = _publish_refused(broker)  # for the rest of the test
        try:
            answer.set()
            with pytest.raises(Exception) as failed:
                result.get(timeout=4 * VISIBILITY + 20, propagate=True)
        finally:
            end_fault()
        assert worker.poll() is None, log.read_text(errors="replace")[-4000:]
    broker.close()
    envelope = failed.value.args[0]
    assert isinstance(envelope, dict) and envelope["error"]["code"] == "DEAD_LETTERED", \
        repr(failed.value)
    assert _dead_letters(own_hub, origin="poison") == 1
    assert api.hits(PATH) == own_hub.settings.max_receives
