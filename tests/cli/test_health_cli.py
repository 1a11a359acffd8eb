"""``hub health --detailed`` and the /metrics gauges of every integration's health and
circuit breaker (seed 004's /health/detailed, kept off the provider-facing port); ``hub
health`` warns about a Redis that can lose queued calls (issue 9, item 4), and checks a
RabbitMQ broker."""

from __future__ import annotations

import dataclasses

import pytest

from hub.calls import integrations
from hub.calls.breaker import breaker_for
from hub.calls.integrations import IntegrationSpec
from hub.ops import healthchecks
from hub.ops.health import check_all
from hub.platform.errors import RetryableError
from tests.calls.fake_provider import Reply, fake_provider
from tests.faults.servers import redis_server

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def _trip(services, row) -> None:
    breaker = breaker_for(services, row)

    def failing() -> None:
        raise RetryableError("provider answered 503")

    with pytest.raises(RetryableError):
        breaker.call(failing)


@pytest.fixture
def checked(services, sessions, tenant):
    """Three integrations of ``tenant``: healthy, degraded with its circuit open, and one
    never checked."""
    with fake_provider() as provider, sessions() as session, session.begin():
        rows = {name: integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=name, adapter="rest", base_url=provider.url,
            config={"health_path": "/public/status", "breaker": {"failure_threshold": 1}}))
            for name in ("a-fine", "b-failing", "c-new")}
        session.commit()
        provider.script("/public/status", Reply(200, {"ok": True}), Reply(503))
        healthchecks.check_one(services, tenant, "a-fine")
        healthchecks.check_one(services, tenant, "b-failing")
    _trip(services, rows["b-failing"])
    return rows


def test_health_detailed_lists_every_integration(hub, tenant, checked):
    status, report = hub.json("health", "--detailed", "--tenant", tenant)

    assert status == 0, report
    found = {i["integration"]: i for i in report["integrations"]}
    assert list(found) == ["a-fine", "b-failing", "c-new"]
    assert (found["a-fine"]["health_status"], found["a-fine"]["breaker"]) == ("healthy", "closed")
    assert (found["b-failing"]["health_status"], found["b-failing"]["breaker"]) == (
        "degraded", "open")
    assert "503" in found["b-failing"]["error"]
    assert isinstance(found["a-fine"]["latency_ms"], int)
    assert found["a-fine"]["last_check_at"] is not None
    assert (found["c-new"]["health_status"], found["c-new"]["last_check_at"]) == ("unknown", None)
    table = hub("health", "--detailed", "--tenant", tenant).stdout
    assert "TENANT" in table and "b-failing" in table and "open" in table


def test_metrics_carry_integration_health_and_breaker_state(services, tenant, checked):
    from prometheus_client import CollectorRegistry, generate_latest

    from hub.ops.statemetrics import IntegrationCollector

    registry = CollectorRegistry()
    registry.register(IntegrationCollector(services))
    text = generate_latest(registry).decode()

    def sample(name: str, integration: str) -> str | None:
        prefix = f'{name}{{integration="{integration}",tenant="{tenant}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return lines[0][len(prefix):] if lines else None

    assert sample("hub_integration_health", "a-fine") == "1.0"
    assert sample("hub_integration_health", "b-failing") == "0.5"
    assert sample("hub_integration_health", "c-new") is None  # never checked
    assert sample("hub_breaker_state", "a-fine") == "0.0"
    assert sample("hub_breaker_state", "b-failing") == "1.0"


def test_an_open_circuit_past_its_recovery_timeout_reads_half_open(services, tenant, checked):
    import time

    from hub.calls.breaker import namespace_for, peek_states

    row = checked["b-failing"]
    key = f"{namespace_for(services.settings, tenant, str(row.id))}:pybreaker:opened_at"
    services.redis_bytes.set(key, int(time.time()) - 120)  # opened two minutes ago

    assert peek_states(services, [row])[str(row.id)] == "half-open"


# The three tests below came with the warnings (5074b39) and were lost when this file
# was rewritten for integration health (7ef7cbb).
def test_broker_redis_without_aof_or_with_eviction_is_warned_about(hub):
    with redis_server(persistent=False) as server:
        env = {"HUB_BROKER_URL": server.url}
        result = hub("health", env=env)
        assert result.exit_code == 0, result.stdout
        warnings = [line for line in result.stdout.splitlines() if " WARN " in line]
        assert len(warnings) == 1 and warnings[0].startswith("broker"), result.stdout
        assert "appendonly yes, appendfsync everysec" in warnings[0]

        client = server.client()
        client.config_set("appendonly", "yes")
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.close()
        code, report = hub.json("health", env=env)

    assert code == 0 and report["ok"]
    assert [w.split(":")[0] for w in report["checks"]["broker"]["warnings"]] == \
        ["maxmemory-policy is allkeys-lru"]


def test_a_redis_run_as_the_recipes_run_it_has_nothing_to_warn_about(settings):
    with redis_server(persistent=True) as server:
        report = check_all(dataclasses.replace(settings, broker_url=server.url))
    assert report["checks"]["broker"] == {"ok": True, "detail": "answers PING", "warnings": []}


def test_rabbitmq_broker_is_checked_over_amqp(settings):
    report = check_all(dataclasses.replace(settings, broker_url=RABBITMQ))
    assert report["checks"]["broker"]["ok"], report
    assert report["checks"]["broker"]["detail"].startswith("RabbitMQ ")
    down = check_all(dataclasses.replace(settings, broker_url="amqp://guest:guest@127.0.0.1:1//"))
    assert not down["ok"] and not down["checks"]["broker"]["ok"]
