"""The adapter contract's hooks (hub/adapters/base.py) as the pipeline honours them:
multi-request exchanges, errors reported inside 2xx bodies, refined error bodies,
write-invalidates-reads, auth defaults and default quotas."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

from hub import adapters
from hub.adapters.base import (
    Adapter,
    Exchange,
    IntegrationView,
    Operation,
    OutboundRequest,
    join_url,
    json_body,
)
from hub.calls.breaker import breaker_for
from hub.calls.pipeline import CallRequest, execute_call
from hub.platform.errors import AuthError, HubError, RateLimited, RetryableError
from tests.calls.fake_provider import Reply


class ContractAdapter(Adapter):
    name = "contract_test"
    auth_defaults: ClassVar[Mapping[str, Any]] = {"in": "query", "name": "api_key"}
    default_limits: ClassVar[Mapping[str, int]] = {"per_minute": 7, "per_day": 1000}
    operations = (
        Operation("chain", params_schema={"type": "object", "required": ["start"]}),
        Operation("local", params_schema={"type": "object"}),
        Operation("status", path="/status"),
        Operation("read", path="/docs/{doc}", cacheable=True, cache_ttl=300),
        Operation("write", method="PUT", path="/docs/{doc}", invalidates="doc"),
    )

    def exchange(self, integration: IntegrationView, op: Operation,
                 params: Mapping[str, Any]) -> Exchange:
        if op.name == "chain":
            first = yield OutboundRequest("GET", join_url(integration.base_url,
                                                          f"/step/{params['start']}"))
            second = yield OutboundRequest("GET", join_url(integration.base_url,
                                                           f"/step/{first['next']}"))
            return {"visited": [params["start"], first["next"], second["next"]]}
        if op.name == "local":
            return {"answered": "locally"}
        return (yield from super().exchange(integration, op, params))

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        body = json_body(content)
        problem = body.get("status") if isinstance(body, dict) else None
        if problem == "SLOW_DOWN":
            raise RateLimited("provider says slow down")
        if problem == "TRY_AGAIN":
            raise RetryableError("provider had a hiccup")
        if problem == "DENIED":
            raise AuthError("provider denied the key")
        return super().parse_response(op, status, headers, content)

    def parse_error(self, op: Operation, status: int, headers: Mapping[str, str],
                    content: bytes) -> HubError | None:
        body = json_body(content)
        if status == 403 and isinstance(body, dict) and "limit" in str(body.get("message")):
            return RateLimited(f"daily limit: {body['message']}")
        return None


@pytest.fixture
def contract(make_integration: Any, provider: Any) -> Iterator[Any]:
    adapters.registry()[ContractAdapter.name] = ContractAdapter()
    try:
        yield make_integration("c", adapter="contract_test")
    finally:
        adapters.registry().pop(ContractAdapter.name, None)


def _call(services: Any, tenant: str, operation: str, params: dict[str, Any] | None = None,
          **kw: Any) -> Any:
    return execute_call(services, CallRequest(tenant, "c", operation, params or {}, **kw))


def test_an_exchange_sends_each_request_with_the_previous_answer(contract, services, tenant,
                                                                 provider):
    provider.script("/step/a", Reply(200, {"next": "b"}))
    provider.script("/step/b", Reply(200, {"next": "c"}))
    outcome = _call(services, tenant, "chain", {"start": "a"})
    assert outcome.status == "success", outcome.error
    assert outcome.result["data"] == {"visited": ["a", "b", "c"]}
    assert [s.path for s in provider.server.seen] == ["/step/a", "/step/b"]
    # auth_defaults: the key went as the ?api_key= query parameter, not a header
    assert all(s.query.get("api_key") == provider.api_key and "X-Api-Key" not in s.headers
               for s in provider.server.seen)


def test_a_failing_step_fails_the_call_and_stops_the_exchange(contract, services, tenant,
                                                              provider):
    provider.script("/step/a", Reply(404))
    outcome = _call(services, tenant, "chain", {"start": "a"})
    assert outcome.status == "failed" and outcome.error.code == "UPSTREAM_ERROR"
    assert provider.hits() == 1


def test_an_operation_answered_without_the_provider(contract, services, tenant, provider):
    outcome = _call(services, tenant, "local")
    assert outcome.result["data"] == {"answered": "locally"}
    assert outcome.result["status_code"] is None and provider.hits() == 0


def test_errors_inside_2xx_bodies_become_hub_errors(contract, services, tenant, provider):
    provider.script("/status", Reply(200, {"status": "SLOW_DOWN"}), Reply(200, {
        "status": "DENIED"}), Reply(200, {"status": "TRY_AGAIN"}))
    slow = _call(services, tenant, "status")
    assert (slow.status, slow.error.code) == ("retry", "RATE_LIMITED")
    assert "SLOW_DOWN" in slow.error.details["body"]
    denied = _call(services, tenant, "status")
    assert (denied.status, denied.error.code) == ("failed", "AUTH_ERROR")
    hiccup = _call(services, tenant, "status")
    assert hiccup.status == "retry" and hiccup.error.retryable


def test_a_body_error_counts_for_the_breaker_like_its_status(contract, services, tenant,
                                                             provider):
    breaker = breaker_for(services, contract)
    provider.script("/status", *[Reply(200, {"status": "TRY_AGAIN"})] * 5,
                    *[Reply(200, {"status": "SLOW_DOWN"})] * 5)
    for _ in range(4):
        _call(services, tenant, "status")
    assert breaker.state == "closed"
    _call(services, tenant, "status")
    assert breaker.state == "open"  # five provider failures, default threshold
    breaker.reset()
    for _ in range(5):
        _call(services, tenant, "status")
    assert breaker.state == "closed"  # rate limiting is not ill health


def test_parse_error_refines_the_status_and_keeps_retry_after(contract, services, tenant,
                                                              provider):
    provider.script("/status", Reply(403, {"message": "daily limit exceeded"},
                                     {"Retry-After": "42"}), Reply(403, {"message": "bad key"}))
    limited = _call(services, tenant, "status")
    assert (limited.status, limited.error.code) == ("retry", "RATE_LIMITED")
    assert limited.delay >= 42 and limited.error.details["status_code"] == 403
    refused = _call(services, tenant, "status")
    assert (refused.status, refused.error.code) == ("failed", "AUTH_ERROR")


def test_a_write_drops_the_cached_reads_it_makes_stale(contract, services, tenant, provider):
    provider.script("/docs/d1", Reply(200, {"v": 1}))
    provider.script("/docs/d2", Reply(200, {"v": 1}))
    assert _call(services, tenant, "read", {"doc": "d1"}).result["data"] == {"v": 1}
    assert _call(services, tenant, "read", {"doc": "d2"}).result["data"] == {"v": 1}
    assert _call(services, tenant, "read", {"doc": "d1"}).result["cached"] is True
    assert _call(services, tenant, "write", {"doc": "d1"}).status == "success"
    provider.script("/docs/d1", Reply(200, {"v": 2}))
    again = _call(services, tenant, "read", {"doc": "d1"})
    assert again.result["cached"] is False and again.result["data"] == {"v": 2}
    assert _call(services, tenant, "read", {"doc": "d2"}).result["cached"] is True


def test_a_new_integration_gets_the_adapters_default_quotas(contract, make_integration):
    assert (contract.rate_limit_per_minute, contract.rate_limit_per_hour,
            contract.rate_limit_per_day) == (7, None, 1000)
    own = make_integration("own", adapter="contract_test", rate_limit_per_minute=3)
    assert own.rate_limit_per_minute == 3
