"""Health checks record each integration's status and announce changes once."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from hub.calls import integrations
from hub.ops import healthchecks
from hub.platform.models import Integration
from tests.calls.fake_provider import Reply


def _events(pubsub, tenant, deadline_s=5.0):
    """Events of ``tenant`` (channels are server-wide: other test runs publish too)."""
    found, deadline = [], time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            event = json.loads(message["data"])
            if event["tenant"] == tenant:
                found.append(event)
        elif found:
            break
    return found


def test_degraded_then_recovered_each_announced_once(services, sessions, tenant, provider,
                                                      make_integration):
    row = make_integration("crm", config={"health_path": "/status"})
    pubsub = services.redis.pubsub()
    pubsub.subscribe("integration.health.degraded", "integration.health.recovered")
    pubsub.get_message(timeout=1)
    pubsub.get_message(timeout=1)

    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "healthy"
    provider.script("/status", Reply(503), Reply(503))
    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "degraded"
    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "degraded"
    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "healthy"

    seen = [(e["type"], e["tenant"], e["data"]["integration"]) for e in _events(pubsub, tenant)]
    assert seen == [("health.degraded", tenant, "crm"), ("health.recovered", tenant, "crm")]
    with sessions() as session:
        stored = integrations.get(session, tenant, row.name)
        assert stored.health_status == "healthy" and stored.last_health_check_at is not None
    pubsub.close()


def test_probe_error_never_shows_a_query_key(services, tenant, provider, make_integration):
    import socket

    from hub.calls import probe

    with socket.socket() as s:  # a port nobody listens on: the error names our URL
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    make_integration("weather", base_url=closed, config={"auth": {"in": "query", "name": "appid"}})
    report = probe.probe(services, tenant, "weather")
    assert not report["ok"] and "appid=" in report["error"]
    assert provider.api_key not in json.dumps(report)


def test_one_broken_integration_does_not_stop_the_checks_of_the_others(services, sessions, tenant,
                                                                        provider, make_integration):
    with sessions() as session, session.begin():
        # An adapter uninstalled after registration (``add`` refuses unknown ones).
        session.add(Integration(tenant_id=tenant, name="a-orphan", adapter="uninstalled",
                                base_url=provider.url))
    make_integration("b-fine", config={"health_path": "/public/health"})

    reports = {r["integration"]: r for r in healthchecks.check_all(services)
               if r["tenant"] == tenant}

    assert reports["a-orphan"]["ok"] is False and "uninstalled" in reports["a-orphan"]["error"]
    assert reports["b-fine"]["health_status"] == "healthy"
    with sessions() as session:
        fine = session.scalars(select(Integration).where(Integration.tenant_id == tenant,
                                                         Integration.name == "b-fine")).one()
        assert fine.health_status == "healthy"


def test_an_error_answer_is_degraded_no_answer_is_down(services, sessions, tenant, provider,
                                                       make_integration):
    import socket

    make_integration("crm", config={"health_path": "/status"})
    with socket.socket() as s:  # nothing listens there: no answer at all
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    pubsub = services.redis.pubsub()
    pubsub.subscribe("integration.health.degraded", "integration.health.recovered")
    pubsub.get_message(timeout=1)
    pubsub.get_message(timeout=1)

    provider.script("/status", Reply(500))
    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "degraded"
    with sessions() as session, session.begin():
        integrations.update(session, tenant, "crm", base_url=closed)
    down = healthchecks.check_one(services, tenant, "crm")
    with sessions() as session:
        row = integrations.get(session, tenant, "crm")
        stored = (row.health_status, row.last_health_latency_ms, row.last_health_error)
    with sessions() as session, session.begin():
        integrations.update(session, tenant, "crm", base_url=provider.url)
    assert healthchecks.check_one(services, tenant, "crm")["health_status"] == "healthy"

    assert down["health_status"] == "down" and down["status_code"] is None
    assert stored[0] == "down" and stored[1] is not None and "Connection" in stored[2]
    seen = [(e["type"], e["data"]["status"], e["data"]["previous"])
            for e in _events(pubsub, tenant)]
    assert seen == [("health.degraded", "degraded", "unknown"),
                    ("health.degraded", "down", "degraded"),
                    ("health.recovered", "healthy", "down")]
    pubsub.close()
