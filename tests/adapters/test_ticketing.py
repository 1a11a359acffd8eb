"""The ``ticketing`` adapter (seed 003) through a real worker, sent by name, against the
fake ticketing system: every operation, both auth schemes, its error and rate-limit
answers, the 5-minute status cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.calls import probe
from hub.platform.models import CacheEntry, IntegrationLog
from tests.adapters.conftest import BY_NAME, Caller, register
from tests.adapters.fake_base import Fault
from tests.adapters.fake_ticketing import FakeTicketing, fake_ticketing, rate_limited


@pytest.fixture
def desk() -> Iterator[FakeTicketing]:
    with fake_ticketing() as fake:
        yield fake


@pytest.fixture
def tickets(worker, client_app, tenant, desk) -> Caller:  # type: ignore[no-untyped-def]
    """The README's registration: api_key auth, the key on stdin."""
    return register(client_app, tenant, "helpdesk", "ticketing", desk.url, "api_key",
                    {"api_key": desk.api_key})


def _new_ticket(tickets: Caller) -> str:
    created = tickets("create_ticket", {"customer_id": "cust-1", "subject": "Cannot pay",
                                        "description": "Card declined twice"})
    return str(created["data"]["ticket_id"])


@BY_NAME
def test_create_ticket(tickets, desk, by):
    envelope = tickets("create_ticket", {"customer_id": "cust-42", "subject": "Refund",
                                         "description": "Order 7 arrived broken",
                                         "priority": "high"}, by=by)
    assert envelope["ok"] and envelope["status_code"] == 201
    ticket_id = envelope["data"]["ticket_id"]
    assert envelope["data"] == {"ticket_id": ticket_id, "status": "open",
                                "url": f"{desk.url}/tickets/{ticket_id.split('-')[1]}"}
    stored = desk.tickets[ticket_id]
    assert (stored["subject"], stored["priority"], stored["custom_fields"]) == (
        "Refund", "high", {"customer_id": "cust-42"})


@BY_NAME
def test_get_ticket_status_is_cached_five_minutes(tickets, desk, by, sessions, tenant):
    ticket_id = _new_ticket(tickets)
    desk.assign(ticket_id, "agent@example.com")
    first = tickets("get_ticket_status", {"ticket_id": ticket_id}, by=by)
    assert first["data"]["status"] == "in_progress"
    assert first["data"]["assigned_to"] == "agent@example.com"
    assert first["data"]["last_updated"] == desk.tickets[ticket_id]["updated_at"]
    desk.assign(ticket_id, "other@example.com", status="solved")
    second = tickets("get_ticket_status", {"ticket_id": ticket_id}, by=by)
    assert second["cached"] is True and second["data"] == first["data"]
    assert desk.hits(f"/tickets/{ticket_id}") == 1
    with sessions() as session:
        outcomes = session.scalars(select(IntegrationLog.outcome).where(
            IntegrationLog.tenant_id == tenant,
            IntegrationLog.operation == "get_ticket_status")).all()
        expires_at = session.scalars(select(CacheEntry.expires_at).where(
            CacheEntry.tenant_id == tenant)).one()
    assert sorted(outcomes) == ["cached", "success"]
    assert 290 <= (expires_at - datetime.now(UTC)).total_seconds() <= 300


@BY_NAME
def test_add_comment(tickets, desk, by):
    ticket_id = _new_ticket(tickets)
    envelope = tickets("add_comment", {"ticket_id": ticket_id, "comment": "Refund issued",
                                       "is_public": False}, by=by)
    assert envelope["data"] == {"comment_id": desk.comments[ticket_id][0]["id"]}
    assert desk.comments[ticket_id][0]["public"] is False
    tickets("add_comment", {"ticket_id": ticket_id, "comment": "Anything else?"}, by=by)
    assert desk.comments[ticket_id][1]["public"] is True  # the seed's default


def test_bearer_auth_works_too(worker, client_app, tenant, desk):
    caller = register(client_app, tenant, "desk-bearer", "ticketing", desk.url, "bearer",
                      {"token": desk.bearer})
    assert caller("create_ticket", {"customer_id": "c", "subject": "s",
                                    "description": "d"})["ok"]


def test_wrong_key_is_auth_error_after_one_reauthentication(worker, client_app, tenant, desk):
    bad = register(client_app, tenant, "desk-bad", "ticketing", desk.url, "api_key",
                   {"api_key": "tk_wrong"})
    error = bad.error(
        "add_comment", {"ticket_id": "TICKET-1", "comment": "x"})
    assert error["code"] == "AUTH_ERROR" and error["details"]["status_code"] == 401
    assert desk.hits("/tickets/TICKET-1/comments") == 2  # 401 -> re-auth once, no more


def test_unknown_ticket_is_not_found_upstream_and_not_retried(tickets, desk):
    error = tickets.error("get_ticket_status", {"ticket_id": "TICKET-404"})
    assert error["code"] == "UPSTREAM_ERROR" and error["details"]["status_code"] == 404
    assert "RecordNotFound" in error["details"]["body"]
    assert desk.hits("/tickets/TICKET-404") == 1


def test_params_are_validated_before_the_provider_is_called(tickets, desk):
    error = tickets.error("create_ticket", {"customer_id": "c", "subject": "s"})
    assert error["code"] == "VALIDATION_ERROR" and "description" in error["message"]
    error = tickets.error("create_ticket", {"customer_id": "c", "subject": "s",
                                            "description": "d", "priority": "whenever"})
    assert error["code"] == "VALIDATION_ERROR"
    assert desk.hits("/tickets") == 0


def test_5xx_and_429_are_retried(tickets, desk):
    ticket_id = _new_ticket(tickets)
    desk.fail_next(Fault(503), rate_limited(retry_after=1))
    envelope = tickets("add_comment", {"ticket_id": ticket_id, "comment": "eventually"})
    assert envelope["ok"] and envelope["attempts"] == 3
    assert len(desk.comments[ticket_id]) == 1


def test_timeout_is_retried(tickets, desk):
    ticket_id = _new_ticket(tickets)
    desk.fail_next(Fault(0, delay=1.5))
    envelope = tickets("get_ticket_status", {"ticket_id": ticket_id}, timeout=0.5)
    assert envelope["ok"] and envelope["attempts"] == 2


def test_health_check_reaches_the_provider_authenticated(tickets, desk, services, tenant):
    assert probe.probe(services, tenant, "helpdesk")["ok"] is True
    assert desk.hits("/tickets") == 1
