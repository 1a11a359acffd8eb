"""A ``hub.call`` made while PostgreSQL is down is not lost: the worker cannot even
resolve the integration, nothing has gone to the provider, so the call waits in the
broker (Celery countdowns, nothing written to PostgreSQL) and runs once PostgreSQL
is back; the caller gets the result. Real processes: a PostgreSQL cluster and a
redis-server of the test's own (the cluster is killed and started again by PID), a
threads-pool worker as deployed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import DeadLetter
from hub.platform.services import Services
from tests.calls.fake_provider import register
from tests.calls.processes import worker_process
from tests.faults.servers import OwnHub
from tests.faults.servers import own_hub as start_own_hub

pytestmark = pytest.mark.slow

TENANT = "acme"
#: Longer than every wait of the old retry schedule together (1 + 2 + 4 + 8 s at most,
#: full jitter), after which the call was given up and its failure could not be stored.
OUTAGE = 20.0
AFTER_THE_LAST_ATTEMPT = 3.0


@pytest.fixture
def own_hub() -> Iterator[OwnHub]:
    with start_own_hub() as hub:
        yield hub


def _wait_for_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the worker log within {timeout}s:\n"
                         f"{path.read_text(errors='replace')[-3000:]}")


def _nothing_left_unacknowledged(hub: OwnHub, timeout: float = 15) -> None:
    """Every message the worker took is acknowledged: none is held (a prefetch slot
    lost for the worker's life) to run again when the worker restarts."""
    client = hub.redis.client()
    deadline = time.monotonic() + timeout
    try:
        while client.hlen("unacked") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.hlen("unacked") == 0, client.hkeys("unacked")
    finally:
        client.close()


def test_a_call_made_while_postgresql_is_down_runs_once_it_is_back(own_hub, api):
    register(own_hub.settings, api, TENANT)
    with worker_process(own_hub.client, ["calls"], pool="threads", concurrency=4,
                        app="tasks", env=own_hub.env) as worker:
        own_hub.pg.crash()
        result = own_hub.client.send_task("hub.call", queue="calls", kwargs={
            "tenant": TENANT, "integration": "crm", "operation": "get",
            "params": {"path": "/v1/contacts/42"}, "cache": False})
        # The worker met the outage (it could not read the integration)...
        _wait_for_log(Path(worker.log_path), "OperationalError", 60)
        started = time.monotonic()
        assert api.hits("/v1/contacts/42") == 0
        # ...which lasts longer than the old retries did (the fault's length, not a wait
        # for something to happen).
        time.sleep(OUTAGE)
        own_hub.pg.start()
        envelope = result.get(timeout=120)
        print(f"answered {time.monotonic() - started:.1f}s after the worker met the outage")
        _nothing_left_unacknowledged(own_hub)
    assert envelope["status_code"] == 200
    assert api.hits("/v1/contacts/42") == 1


def test_an_outage_past_the_attempts_ends_dead_lettered_and_the_caller_is_told(own_hub, api):
    """Waits of at most 2 s (HUB_MAX_COUNTDOWN caps them) give up within ~8 s, well
    inside the outage: the call is dead-lettered, the letter waits in the broker until
    PostgreSQL is back, and its recorder stores the call's failure, which the worker
    could not: the caller gets DEAD_LETTERED instead of PENDING for ever."""
    register(own_hub.settings, api, TENANT)
    env = {**own_hub.env, "HUB_MAX_COUNTDOWN": "2"}
    with worker_process(own_hub.client, ["calls", "dead_letter"], pool="threads",
                        concurrency=4, app="tasks", env=env) as worker:
        own_hub.pg.crash()
        result = own_hub.client.send_task("hub.call", queue="calls", kwargs={
            "tenant": TENANT, "integration": "crm", "operation": "get",
            "params": {"path": "/v1/contacts/7"}, "cache": False})
        _wait_for_log(Path(worker.log_path), "at attempt 5, the last", 60)
        # The outage goes on past the last attempt (its length, not a wait for an event).
        time.sleep(AFTER_THE_LAST_ATTEMPT)
        own_hub.pg.start()
        with pytest.raises(Exception) as failed:
            result.get(timeout=120)
        _nothing_left_unacknowledged(own_hub)
    envelope = failed.value.args[0]
    assert envelope["error"]["code"] == "DEAD_LETTERED"
    assert api.hits("/v1/contacts/7") == 0
    services = Services(own_hub.settings, RecordingDispatcher())
    try:
        with services.sessions() as session:
            letters = session.scalars(select(DeadLetter).where(
                DeadLetter.task_id == result.id)).all()
    finally:
        services.close()
    assert len(letters) == 1 and letters[0].attempts == 5
