"""The call pipeline in-process (hub.calls.pipeline.execute_call) against a fake provider."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from sqlalchemy import select

from hub.calls.pipeline import CallRequest, execute_call
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import IntegrationLog
from hub.platform.services import Services
from tests.calls.fake_provider import Reply, rate_limited


def _logs(session, tenant):  # type: ignore[no-untyped-def]
    return list(session.scalars(select(IntegrationLog).where(IntegrationLog.tenant_id == tenant)
                                .order_by(IntegrationLog.started_at)))


def test_success_envelope_and_audit_row(services, session, tenant, provider, make_integration):
    make_integration("crm")
    outcome = execute_call(services, CallRequest(tenant, "crm", "post",
                                                 {"path": "/v1/tickets", "json": {"a": 1}}))
    assert outcome.status == "success"
    result = outcome.result
    assert set(result) == {"ok", "status_code", "data", "cached", "integration", "operation",
                           "attempts", "log_id"}
    assert result["ok"] is True and result["cached"] is False and result["attempts"] == 1
    assert result["data"] == {"method": "POST", "path": "/v1/tickets", "query": {},
                              "json": {"a": 1}}
    [row] = _logs(session, tenant)
    assert str(row.id) == result["log_id"]
    assert (row.outcome, row.status_code, row.method) == ("success", 200, "POST")
    assert row.request_headers["X-Api-Key"] == "[REDACTED]"
    assert row.estimated_cost == Decimal("0.002")
    assert provider.api_key not in str(row.request_headers)


def test_not_found_is_final_and_not_retried(services, tenant, provider, make_integration):
    make_integration("crm")
    provider.script("/v1/missing", Reply(404))
    outcome = execute_call(services, CallRequest(tenant, "crm", "get", {"path": "/v1/missing"},
                                                 cache=False))
    assert outcome.status == "failed"
    assert outcome.error.code == "UPSTREAM_ERROR"
    assert outcome.error.details["status_code"] == 404
    assert provider.hits("/v1/missing") == 1


def test_server_error_is_retried_and_429_honours_retry_after(services, tenant, provider,
                                                             make_integration):
    make_integration("crm")
    provider.script("/v1/x", Reply(503), rate_limited("7"))
    first = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/x"}))
    assert first.status == "retry" and first.error.code == "UPSTREAM_ERROR"
    assert 0 <= first.delay <= 0.01  # first backoff ceiling = base
    second = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/x"}),
                          attempt=2)
    assert second.status == "retry" and second.delay >= 7.0
    assert second.error.code == "RATE_LIMITED"


def test_retries_exhausted_after_max_attempts(services, tenant, provider, make_integration):
    make_integration("crm")
    provider.script("/v1/x", Reply(500), Reply(500), Reply(500))
    outcomes = [execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/x"}),
                             attempt=n) for n in (1, 2, 3)]
    assert [o.status for o in outcomes] == ["retry", "retry", "exhausted"]


def test_validation_error_before_any_request(services, tenant, provider, make_integration):
    make_integration("crm")
    outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"nopath": 1}))
    assert outcome.status == "failed" and outcome.error.code == "VALIDATION_ERROR"
    assert provider.hits() == 0


def test_bad_call_options_are_validation_errors(services, tenant, provider, make_integration):
    make_integration("crm")
    for options in ({"timeout": -1}, {"timeout": "soon"}, {"on_rate_limit": "maybe"}):
        outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/"},
                                                     **options))
        assert outcome.error.code == "VALIDATION_ERROR", options
    listed = execute_call(services, CallRequest(tenant, "crm", "post", ["/"]))  # type: ignore[arg-type]
    assert listed.error.code == "VALIDATION_ERROR"
    assert provider.hits() == 0


def test_unknown_and_disabled_integration(services, session, tenant, provider,
                                          make_integration):
    from hub.calls import integrations

    assert execute_call(services, CallRequest(tenant, "nope", "get", {"path": "/"})) \
        .error.code == "NOT_FOUND"
    make_integration("crm")
    with session.begin():
        integrations.set_status(session, tenant, "crm", "disabled")
    outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/"}))
    assert outcome.error.code == "INTEGRATION_DISABLED"
    assert provider.hits() == 0


def test_401_reauthenticates_once_with_oauth2(services, session, tenant, provider,
                                              make_integration):
    make_integration("crm", auth_type="oauth2_client_credentials",
                     credentials={"client_id": provider.client_id,
                                  "client_secret": provider.client_secret},
                     config={"auth": {"token_url": provider.url + "/oauth/token"}})
    ok = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/a"}))
    assert ok.status == "success" and provider.token_requests == 1
    provider.revoke_tokens()  # the cached token is now refused with a 401
    again = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/a"}))
    assert again.status == "success", again.error
    assert provider.token_requests == 2
    assert again.result["attempts"] == 2
    outcomes = [r.outcome for r in _logs(session, tenant)]
    assert outcomes == ["success", "failed", "success"]


def test_401_twice_is_an_auth_error(services, tenant, provider, make_integration):
    make_integration("crm", credentials={"api_key": "wrong-key-value"})
    outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/a"}))
    assert outcome.status == "failed" and outcome.error.code == "AUTH_ERROR"
    assert provider.hits("/v1/a") == 2


def test_quota_over_limit_waits_or_fails_fast(services, redis_client, tenant, provider,
                                              make_integration):
    import json

    make_integration("crm", rate_limit_per_minute=2)
    req = CallRequest(tenant, "crm", "post", {"path": "/v1/q"})
    assert [execute_call(services, req).status for _ in range(2)] == ["success", "success"]
    pubsub = redis_client.pubsub()
    pubsub.subscribe("integration.rate_limit.exceeded")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    waiting = execute_call(services, req)
    assert waiting.status == "retry" and waiting.reason == "rate_limited"
    assert 0 < waiting.delay <= 60
    event = json.loads(pubsub.get_message(timeout=2)["data"])
    pubsub.close()
    assert (event["type"], event["tenant"], event["data"]["integration"]) == \
        ("rate_limit.exceeded", tenant, "crm")
    failing = execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/q"},
                                                 on_rate_limit="fail"))
    assert failing.status == "failed" and failing.error.code == "RATE_LIMITED"
    assert provider.hits("/v1/q") == 2


def test_idempotent_write_runs_once_under_a_race(services, tenant, provider, make_integration):
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=0.5))
    req = CallRequest(tenant, "payments", "post", {"path": "/v1/charges", "json": {"amount": 5}},
                      idempotency_key="order-42")
    results: list = []
    barrier = threading.Barrier(2)

    def run(task_id: str) -> None:
        barrier.wait()
        results.append(execute_call(services, req, task_id=task_id))

    threads = [threading.Thread(target=run, args=(f"task-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert provider.hits("/v1/charges") == 1
    assert [o.status for o in results] == ["success", "success"]
    assert results[0].result == results[1].result
    assert results[0].result["data"] == {"id": "ch_1"}
    repeat = execute_call(services, req, task_id="task-later")
    assert repeat.result == results[0].result and provider.hits("/v1/charges") == 1


def test_ssrf_guard_refuses_loopback(settings, tenant, provider, make_integration):
    make_integration("internal")
    strict = Services(load_settings(allow_private_networks=False), RecordingDispatcher())
    try:
        outcome = execute_call(strict, CallRequest(tenant, "internal", "post", {"path": "/x"}))
    finally:
        strict.close()
    assert outcome.status == "failed" and outcome.error.code == "VALIDATION_ERROR"
    assert "refusing to connect" in outcome.error.message
    assert provider.hits() == 0


def test_path_cannot_leave_the_base_url(services, tenant, provider, make_integration):
    make_integration("crm", base_url=provider.url + "/api")
    # Issue 9 item 14: the last seven left /api (a server resolves them to / or above).
    for path in ("//evil.example/x", "http://evil.example/", "/a/../../etc", "/..?x=1",
                 "/..#f", "/%2e%2e/admin", "/%252e%252e/admin", "/a/..", "/..;/admin",
                 "/a/%2E%2E%2F..%2Fadmin"):
        outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"path": path}))
        assert outcome.status == "failed" and outcome.error.code == "VALIDATION_ERROR", path
    assert provider.hits() == 0
    for path in ("/v1/file..txt", "/v1/.well-known/x", "/v1/a?next=../b&u=https://x"):
        outcome = execute_call(services, CallRequest(tenant, "crm", "post", {"path": path}))
        assert outcome.status == "success", path
        assert outcome.result["data"]["path"] == "/api" + path.split("?")[0]


def test_call_metrics(services, tenant, provider, make_integration):
    from hub.platform import metrics

    make_integration("metered", rate_limit_per_minute=1)

    def value(metric, *labels):  # type: ignore[no-untyped-def]
        return metric.child(*labels)._value.get()

    counters = [(metrics.CALLS, "metered", "get", "success"),
                (metrics.CALLS, "metered", "get", "cached"),
                (metrics.CALLS, "metered", "post", "rate_limited"),
                (metrics.CACHE_LOOKUPS, "metered", "get", "hit"),
                (metrics.CACHE_LOOKUPS, "metered", "get", "miss"),
                (metrics.RATE_LIMIT_REJECTIONS, "metered")]
    before = [value(*c) for c in counters]  # counters are per process: compare deltas
    execute_call(services, CallRequest(tenant, "metered", "get", {"path": "/v1/m"}))
    execute_call(services, CallRequest(tenant, "metered", "get", {"path": "/v1/m"}))
    execute_call(services, CallRequest(tenant, "metered", "post", {"path": "/v1/m"}))
    assert [value(*c) - b for c, b in zip(counters, before)] == [1, 1, 1, 1, 1, 1]
    assert b"hub_call_duration_seconds_bucket" in metrics.render()[0]


def test_a_5xx_then_an_open_circuit_use_the_fallback_integration(services, session, tenant,
                                                                  provider, make_integration):
    from hub.calls.breaker import breaker_for

    make_integration("backup")
    primary = make_integration("primary", fallback="backup", config={
        "retry": {"base": 0.01, "cap": 0.02, "max_attempts": 3},
        "breaker": {"failure_threshold": 1, "recovery_timeout": 60}})
    provider.script("/v1/geo", Reply(503))
    first = execute_call(services, CallRequest(tenant, "primary", "post", {"path": "/v1/geo"}))
    assert first.status == "success" and first.result["integration"] == "backup"
    assert [(f["integration"], f["reason"]) for f in first.result["failover"]] == [
        ("primary", "server_error")]
    assert breaker_for(services, primary).state == "open"
    served = execute_call(services, CallRequest(tenant, "primary", "post", {"path": "/v1/geo"}))
    assert served.status == "success" and served.result["integration"] == "backup"
    assert served.result["failover"][0]["reason"] == "circuit_open"
    assert provider.hits("/v1/geo") == 3  # 503, backup, backup: the open circuit sent nothing
    rows = _logs(session, tenant)
    assert [r.outcome for r in rows] == ["failed", "success", "circuit_open", "success"]
    assert rows[1].failover_from == "primary"
    assert rows[1].failover_reason.startswith("primary: server_error (provider answered 503")


def test_events_of_a_call(services, redis_client, tenant, provider, make_integration):
    import json

    make_integration("crm")
    pubsub = redis_client.pubsub()
    pubsub.psubscribe("integration.*")
    assert pubsub.get_message(timeout=1)["type"] == "psubscribe"
    execute_call(services, CallRequest(tenant, "crm", "get", {"path": "/v1/e"}))
    execute_call(services, CallRequest(tenant, "crm", "get", {"path": "/v1/e"}))
    provider.script("/v1/f", Reply(404))
    execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/f"}))
    seen = []
    # The channels are server-wide: other test runs publish on them without pause, so
    # read until this tenant's six events are in (or a deadline), not until silence.
    deadline = time.monotonic() + 10
    while len(seen) < 6 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        event = json.loads(message["data"]) if message is not None else {}
        if event.get("tenant") == tenant:
            seen.append((message["channel"], event["data"]["operation"]))
    pubsub.close()
    assert seen == [("integration.cache.miss", "get"), ("integration.request.sent", "get"),
                    ("integration.request.completed", "get"), ("integration.cache.hit", "get"),
                    ("integration.request.sent", "post"), ("integration.request.failed", "post")]


def test_a_call_survives_redis_being_down(settings, tenant, provider, make_integration):
    """Quotas, holds, breaker, cache, events and counters all fail open: the provider
    call and its audit row in PostgreSQL are what matter."""
    make_integration("crm", rate_limit_per_minute=100)
    blind = Services(load_settings(redis_url="redis://127.0.0.1:1/0"), RecordingDispatcher())
    try:
        post = execute_call(blind, CallRequest(tenant, "crm", "post", {"path": "/v1/r"}))
        get = execute_call(blind, CallRequest(tenant, "crm", "get", {"path": "/v1/r"}))
    finally:
        blind.close()
    assert post.status == "success", post.error
    assert get.status == "success" and get.result["cached"] is False
    assert provider.hits("/v1/r") == 2


def test_a_query_key_under_any_name_leaks_into_no_event_or_error(
        services, redis_client, tenant, provider, make_integration):
    import json
    import socket

    with socket.socket() as s:  # a port nobody listens on: the call fails with our URL
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    make_integration("weather", base_url=closed, config={"auth": {"in": "query", "name": "appid"}})
    pubsub = redis_client.pubsub()
    pubsub.psubscribe("integration.*")
    assert pubsub.get_message(timeout=1)["type"] == "psubscribe"
    outcome = execute_call(services, CallRequest(tenant, "weather", "get", {"path": "/v1/w"}))
    events = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        events.append(message["data"])
    pubsub.close()
    assert outcome.status == "retry" and "appid=" in outcome.error.details["url"]
    assert any("appid=" in e for e in events)
    for text in [json.dumps(outcome.error.envelope()), str(outcome.error), *events]:
        assert provider.api_key not in text


def test_urllib3_request_lines_hide_a_query_key_under_any_name(
        services, tenant, provider, make_integration, caplog):
    import logging

    make_integration("weather", config={"auth": {"in": "query", "name": "appid"}})
    caplog.set_level(logging.DEBUG, logger="urllib3")
    execute_call(services, CallRequest(tenant, "weather", "get", {"path": "/v1/w"}))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/v1/w?appid=" in line for line in lines)  # the request line was logged
    assert not [line for line in lines if provider.api_key in line]


def test_an_idempotent_write_served_by_the_fallback_is_stored_under_the_called_key(
        services, tenant, provider, make_integration):
    make_integration("backup")
    make_integration("primary", fallback="backup", config={
        "retry": {"base": 0.01, "cap": 0.02, "max_attempts": 3},
        "breaker": {"failure_threshold": 1, "recovery_timeout": 60}})
    provider.script("/v1/pay", Reply(503))
    req = CallRequest(tenant, "primary", "post", {"path": "/v1/pay"}, idempotency_key="k-1")
    served = execute_call(services, req, task_id="t-1")  # 503, then the fallback
    assert served.status == "success" and served.result["integration"] == "backup"
    again = execute_call(services, req, task_id="t-2")  # a later call with the same key
    assert again.status == "success" and again.result == served.result
    assert provider.hits("/v1/pay") == 2
