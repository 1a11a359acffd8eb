"""What a call reads before it runs, in one round trip (hub.calls.preflight): the same
decisions as the reads it replaces, and never a value read for another integration."""

from __future__ import annotations

from hub.calls import preflight
from hub.calls.breaker import breaker_for
from hub.calls.pipeline import CallRequest, execute_call
from hub.calls.quotas import ProviderHold
from hub.ops import guardrails
from tests.calls.fake_provider import Reply


def _post(tenant):  # type: ignore[no-untyped-def]
    return CallRequest(tenant, "crm", "post", {"path": "/v1/p"})


def test_one_round_trip_counts_the_receive_and_reads_hold_and_breaker(
        services, redis_client, tenant, provider, make_integration):
    row = make_integration("crm")
    counter = (guardrails.receive_key(services, "task-1"), guardrails.RECEIVE_TTL)
    assert preflight.read(services, tenant, "crm", counter=counter).counter == 1
    first = preflight.read(services, tenant, "crm", counter=counter)
    # Nothing resolved yet in this process: the generation and the counter only.
    assert first is not None and first.counter == 2 and first.row_id is None
    assert first.counter_key == counter[0]
    done = execute_call(services, _post(tenant), preflight=first)
    # A final outcome: the counter went with the call's events.
    assert done.status == "success" and done.counter_forgotten
    assert not redis_client.exists(counter[0])

    ProviderHold(redis_client, services.settings.redis_key("hold") + ":").hold(
        f"{tenant}:{row.id}", until=9e9)
    second = preflight.read(services, tenant, "crm", counter=counter)
    assert second is not None and second.counter == 1 and second.for_row(row.id)
    assert 0 < second.hold_ms <= 86_400_000  # MAX_HOLD_SECONDS
    assert 0 < redis_client.ttl(counter[0]) <= guardrails.RECEIVE_TTL
    held = execute_call(services, _post(tenant), preflight=second)
    assert held.status == "retry" and held.error.code == "RATE_LIMITED"
    assert provider.hits("/v1/p") == 1  # the hold read in the pipeline kept it home
    # A retry keeps its receive counted (a retry the broker refuses requeues the message).
    assert not held.counter_forgotten and redis_client.get(counter[0]) == "1"


def test_an_open_circuit_read_ahead_fails_fast(services, tenant, provider, make_integration):
    row = make_integration("crm", config={"breaker": {"failure_threshold": 1,
                                                      "recovery_timeout": 60}})
    provider.script("/v1/p", Reply(503))
    assert execute_call(services, _post(tenant)).status == "retry"
    assert breaker_for(services, row).state == "open"
    read = preflight.read(services, tenant, "crm")
    assert read is not None and read.for_row(row.id) and read.breaker[0] == "open"
    outcome = execute_call(services, _post(tenant), preflight=read)
    assert outcome.error.code == "CIRCUIT_OPEN"
    assert provider.hits("/v1/p") == 1


def test_reads_for_another_integration_or_call_are_not_used(
        services, redis_client, tenant, provider, make_integration):
    row = make_integration("crm")
    assert execute_call(services, _post(tenant)).status == "success"
    read = preflight.read(services, tenant, "crm")
    assert read is not None and read.for_row(row.id) and read.hold_ms < 0
    # A preflight of another call is ignored...
    other = preflight.Preflight(tenant, "other", read.generation, row_id=str(row.id),
                                hold_ms=10_000_000, breaker=("open", 9))
    assert execute_call(services, _post(tenant), preflight=other).status == "success"
    # ...and so are hold and breaker values read for another row of that name (the
    # integration changed since: its new row reads its own).
    stale = preflight.Preflight(tenant, "crm", read.generation, row_id="not-this-row",
                                hold_ms=10_000_000, breaker=("open", 9))
    assert execute_call(services, _post(tenant), preflight=stale).status == "success"
    assert provider.hits("/v1/p") == 3


def test_redis_down_fails_open(services, tenant, provider, make_integration):
    make_integration("crm")
    broken = services.settings.redis_url.rsplit(":", 1)[0] + ":1/0"
    from dataclasses import replace

    from hub.platform.dispatch import RecordingDispatcher
    from hub.platform.services import Services

    down = Services(replace(services.settings, redis_url=broken), RecordingDispatcher())
    try:
        read = preflight.read(down, tenant, "crm", counter=("k", 10))
        assert read is not None and read.counter is None
        assert read.generation == preflight.UNAVAILABLE and read.row_id is None
    finally:
        down.close()
