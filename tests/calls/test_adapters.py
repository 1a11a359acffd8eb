"""Adapters: declarative operations, the generic REST adapter and the registry."""

from __future__ import annotations

import pytest

from hub import adapters
from hub.adapters.base import Adapter, IntegrationView, Operation
from hub.calls.pipeline import CallRequest, execute_call
from hub.platform.errors import NotFound, ValidationError
from tests.calls.fake_provider import Reply


class TicketsAdapter(Adapter):
    """Seed 003's ticketing adapter, declared."""

    name = "tickets_test"
    operations = (
        Operation("create_ticket", method="POST", path="/tickets",
                  params_schema={"type": "object", "required": ["subject", "customer_id"],
                                 "properties": {"subject": {"type": "string"},
                                                "customer_id": {"type": "string"},
                                                "priority": {"enum": ["low", "normal"]}}},
                  request_map="{subject: subject, priority: priority || 'normal', "
                              "custom_fields: {customer_id: customer_id}}",
                  response_map="{ticket_id: id, status: status}"),
        Operation("get_ticket_status", method="GET", path="/tickets/{ticket_id}",
                  params_schema={"type": "object", "required": ["ticket_id"]},
                  query=("expand",), cacheable=True, cache_ttl=300,
                  response_map="{ticket_id: id, status: status, "
                               "assigned_to: assignee.email}"),
    )


VIEW = IntegrationView("t", "https://tickets.example.com/api/v2/", {})


def test_declared_operation_builds_the_request():
    adapter = TicketsAdapter()
    out = adapter.build_request(VIEW, adapter.operation("get_ticket_status"),
                                {"ticket_id": "T 1/2", "expand": "assignee"})
    assert (out.method, out.url) == ("GET", "https://tickets.example.com/api/v2/tickets/T%201%2F2")
    assert out.params == {"expand": "assignee"} and out.json is None
    create = adapter.build_request(VIEW, adapter.operation("create_ticket"),
                                   {"subject": "Help", "customer_id": "c1"})
    assert create.json == {"subject": "Help", "priority": "normal",
                           "custom_fields": {"customer_id": "c1"}}
    assert adapter.operation("create_ticket").is_idempotent is False
    assert adapter.operation("get_ticket_status").is_idempotent is True
    with pytest.raises(NotFound):
        adapter.operation("nope")
    with pytest.raises(ValidationError):
        adapter.validate(adapter.operation("create_ticket"), {"subject": 5})


def test_rest_adapter_refuses_escaping_paths_and_auth_headers():
    rest = adapters.get("rest")
    op = rest.operation("request")
    out = rest.build_request(VIEW, op, {"method": "patch", "path": "/a", "json": [1]})
    assert (out.method, out.url, out.json) == ("PATCH",
                                               "https://tickets.example.com/api/v2/a", [1])
    for path in ("//evil.example", "https://evil.example/x", "/a/../../b", "\\\\evil"):
        with pytest.raises(ValidationError):
            rest.build_request(VIEW, op, {"method": "GET", "path": path})
    with pytest.raises(ValidationError):
        rest.build_request(VIEW, op, {"method": "GET", "path": "/", "headers": {
            "Authorization": "Bearer mine"}})


def test_registry_discovers_modules_and_names_tasks():
    assert "rest" in adapters.registry()
    names = adapters.task_names()
    assert names["hub.rest.get"] == ("rest", "get") and "hub.rest.request" in names
    with pytest.raises(NotFound):
        adapters.get("no-such-adapter")


@pytest.fixture
def tickets_adapter():  # type: ignore[no-untyped-def]
    adapters.registry()[TicketsAdapter.name] = TicketsAdapter()
    yield
    adapters.registry().pop(TicketsAdapter.name, None)


def test_declared_operations_through_the_pipeline(tickets_adapter, services, tenant, provider,
                                                  make_integration):
    make_integration("desk", adapter="tickets_test")
    provider.script("/tickets", Reply(200, {"id": "TICKET-123", "status": "open",
                                            "url": "https://x/123"}))
    created = execute_call(services, CallRequest(tenant, "desk", "create_ticket",
                                                 {"subject": "Help", "customer_id": "c1"}))
    assert created.result["data"] == {"ticket_id": "TICKET-123", "status": "open"}
    assert provider.server.seen[-1].body == \
        b'{"subject": "Help", "priority": "normal", "custom_fields": {"customer_id": "c1"}}'
    provider.script("/tickets/TICKET-123", Reply(200, {
        "id": "TICKET-123", "status": "in_progress", "assignee": {"email": "a@example.com"}}))
    status = [execute_call(services, CallRequest(tenant, "desk", "get_ticket_status",
                                                 {"ticket_id": "TICKET-123"})).result
              for _ in range(2)]
    assert status[0]["data"] == {"ticket_id": "TICKET-123", "status": "in_progress",
                                 "assigned_to": "a@example.com"}
    assert [s["cached"] for s in status] == [False, True]
    assert provider.hits("/tickets/TICKET-123") == 1


class BrokenAdapter(Adapter):
    name = "broken_test"
    operations = (Operation("get", path="/x"),)

    def build_request(self, integration, op, params):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug with https://x.example/?api_key=leaked-value-123")


def test_unexpected_errors_are_retried_then_exhausted_without_leaking(services, caplog, tenant,
                                                                      provider,
                                                                      make_integration):
    adapters.registry()[BrokenAdapter.name] = BrokenAdapter()
    try:
        make_integration("odd", adapter="broken_test")
        first = execute_call(services, CallRequest(tenant, "odd", "get"))
        last = execute_call(services, CallRequest(tenant, "odd", "get"), attempt=5)
    finally:
        adapters.registry().pop(BrokenAdapter.name, None)
    assert (first.status, first.reason) == ("retry", "internal_error")
    assert first.error.message == "internal error (RuntimeError)"
    assert last.status == "exhausted"
    assert "leaked-value-123" not in caplog.text and "RuntimeError" in caplog.text
