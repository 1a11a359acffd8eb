"""hub.calls.breaker: one breaker state shared through Redis by separate processes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import pytest

from hub.calls import integrations
from hub.calls.breaker import breaker_for
from hub.calls.integrations import IntegrationSpec
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.errors import CircuitOpen, NotFound, RateLimited, TimeoutError_
from hub.platform.services import Services

# Another worker process: loads the integration from PostgreSQL and fails calls
# through its own breaker_for() until the circuit trips.
_OTHER_PROCESS = """
import sys
from hub.calls import integrations
from hub.calls.breaker import breaker_for
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.errors import TimeoutError_
from hub.platform.services import Services

services = Services(load_settings(), RecordingDispatcher())
with services.sessions() as session:
    row = integrations.get(session, sys.argv[1], "flaky")

def fail():
    raise TimeoutError_("provider did not answer")

for _ in range(int(sys.argv[2])):
    try:
        breaker_for(services, row).call(fail)
    except TimeoutError_:
        pass
print(breaker_for(services, row).state)
"""


def make(services, tenant, **breaker):
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="flaky", adapter="rest", base_url="http://provider.invalid",
            config={"breaker": breaker}))
    with services.sessions() as session:
        row = integrations.get(session, tenant, "flaky")
        session.expunge(row)
        return row


def fail_with(exc):
    def call():
        raise exc
    return call


def test_opened_in_another_process_is_open_here_then_recovers(services, tenant):
    # The recovery timeout must outlast the other process's start-up on a loaded machine.
    row = make(services, tenant, failure_threshold=3, recovery_timeout=8)
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, tenant, "3"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "open"

    calls = []
    breaker = breaker_for(services, row)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == [] and info.value.code == "CIRCUIT_OPEN"
    assert 0 < info.value.details["retry_after"] <= 8

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            assert breaker_for(services, row).call(lambda: "ok") == "ok"
            break
        except CircuitOpen:
            time.sleep(0.05)
    assert breaker_for(services, row).state == "closed"


def test_only_provider_failures_count(services, tenant):
    row = make(services, tenant, failure_threshold=2, recovery_timeout=60)
    for exc in (NotFound("404"), RateLimited("429"), NotFound("404"), RateLimited("429")):
        with pytest.raises(type(exc)):
            breaker_for(services, row).call(fail_with(exc))
    assert breaker_for(services, row).state == "closed"
    for _ in range(2):
        with pytest.raises(TimeoutError_):  # the tripping call keeps its own error
            breaker_for(services, row).call(fail_with(TimeoutError_("t")))
    assert breaker_for(services, row).state == "open"


def test_failure_counter_resets_on_success(services, tenant):
    row = make(services, tenant, failure_threshold=2)
    for _ in range(3):
        with pytest.raises(TimeoutError_):
            breaker_for(services, row).call(fail_with(TimeoutError_("t")))
        breaker_for(services, row).call(lambda: None)
    assert breaker_for(services, row).state == "closed"


def test_half_open_lets_one_trial_through(services, tenant):
    row = make(services, tenant, failure_threshold=1, recovery_timeout=2)
    with pytest.raises(TimeoutError_):
        breaker_for(services, row).call(fail_with(TimeoutError_("t")))
    started, finish = threading.Event(), threading.Event()

    def slow_trial():
        started.set()
        finish.wait(10)
        return "recovered"

    results = []
    deadline = time.monotonic() + 10
    while breaker_for(services, row).retry_after() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    trial = threading.Thread(target=lambda: results.append(
        breaker_for(services, row).call(slow_trial)))
    trial.start()
    assert started.wait(10)
    with pytest.raises(CircuitOpen):  # a second worker during the trial fails fast
        breaker_for(services, row).call(lambda: "second")
    finish.set()
    trial.join(10)
    assert results == ["recovered"]
    assert breaker_for(services, row).state == "closed"
    # the trial lock is released at once, not left to expire
    assert not services.redis_bytes.exists(breaker_for(services, row).namespace + ":trial")


def test_tenants_do_not_share_breakers(services, tenant):
    row = make(services, tenant, failure_threshold=1)
    other = make(services, tenant + "-b", failure_threshold=1)
    with pytest.raises(TimeoutError_):
        breaker_for(services, row).call(fail_with(TimeoutError_("t")))
    assert breaker_for(services, row).state == "open"
    assert breaker_for(services, other).state == "closed"


def test_redis_down_fails_open(services, tenant):
    row = make(services, tenant, failure_threshold=1)
    down = Services(dataclasses.replace(services.settings, redis_url="redis://127.0.0.1:1/0"),
                    RecordingDispatcher())
    try:
        assert breaker_for(down, row).call(lambda: "called") == "called"
    finally:
        down.close()
