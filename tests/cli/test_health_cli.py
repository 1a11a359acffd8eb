"""``hub health`` warns about a Redis that can lose queued calls (issue 9, item 4), and
checks a RabbitMQ broker."""

from __future__ import annotations

import dataclasses

from hub.ops.health import check_all
from tests.faults.servers import redis_server

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def test_broker_redis_without_aof_or_with_eviction_is_warned_about(hub, settings):
    with redis_server(persistent=False) as server:
        env = {"HUB_BROKER_URL": server.url}
        result = hub("health", env=env)
        assert result.exit_code == 0, result.stdout
        warnings = [line for line in result.stdout.splitlines() if " WARN " in line]
        assert len(warnings) == 1 and warnings[0].startswith("broker")
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
