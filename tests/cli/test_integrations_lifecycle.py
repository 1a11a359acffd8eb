"""The registry's lifecycle: unknown adapters refused, adapter versions flagged, delete."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from hub import adapters
from hub.adapters.base import Adapter, Operation
from hub.calls import audit, integrations
from hub.ops import queues
from hub.platform import deadletters, scheduler
from hub.platform.models import DeadLetter, IntegrationLog, ScheduledTask
from tests.calls.polling import wait_for

BASE = "http://127.0.0.1:9"  # loopback, nothing listens: beat's probes stay local


def _add(hub, tenant, name="crm", adapter="rest"):
    return hub.json("integrations", "add", "--tenant", tenant, "--name", name,
                    "--adapter", adapter, "--base-url", BASE)


def test_add_refuses_an_unknown_adapter(hub, tenant):
    status, body = _add(hub, tenant, adapter="no_such_adapter")

    assert status == 1 and body["error"]["code"] == "VALIDATION_ERROR"
    assert "unknown adapter 'no_such_adapter'" in body["error"]["message"]
    assert "rest" in body["error"]["details"]["adapters"]
    assert hub.json("integrations", "list", "--tenant", tenant)[1] == []


class _Tickets(Adapter):
    name = "tickets_versioned_test"
    version = "1.0"
    operations = (Operation("create", method="POST", path="/tickets", params_schema={
        "type": "object", "required": ["subject"],
        "properties": {"subject": {"type": "string"}, "priority": {"type": "string"}}}),)


class _TicketsV2(_Tickets):
    version = "2.0"
    operations = (Operation("create", method="POST", path="/tickets", params_schema={
        "type": "object", "required": ["subject", "queue"],
        "properties": {"subject": {"type": "string"}, "queue": {"type": "string"}}}),)


@pytest.fixture
def tickets_adapter():
    adapters.registry()[_Tickets.name] = _Tickets()
    yield
    adapters.registry().pop(_Tickets.name, None)


def _check(hub, tenant):
    return hub.json("integrations", "show", "--tenant", tenant, "--name", "desk")[1][
        "adapter_compat"]


def test_a_breaking_adapter_change_is_flagged_until_accepted(hub, tenant, tickets_adapter):
    status, added = _add(hub, tenant, "desk", _Tickets.name)
    assert status == 0 and added["adapter_version"] == "1.0"
    assert _check(hub, tenant)["status"] == "current"

    adapters.registry()[_Tickets.name] = _TicketsV2()  # a new release of the adapter
    compat = _check(hub, tenant)
    table = hub("integrations", "list", "--tenant", tenant).stdout

    assert compat["status"] == "breaking"
    assert compat["problems"] == ["create: param 'queue' is now required"]
    assert "BREAKING 1.0->2.0: create: param 'queue' is now required" in table

    status, upgraded = hub.json("integrations", "upgrade", "--tenant", tenant, "--name", "desk")
    assert status == 0 and upgraded["adapter_version"] == "2.0"
    assert _check(hub, tenant)["status"] == "current"


def test_delete_keeps_audit_rows_and_dead_letters_and_frees_the_name(hub, tenant, sessions):
    _add(hub, tenant)
    with sessions() as session, session.begin():
        row = integrations.get(session, tenant, "crm")
        log = audit.write(session, audit.Attempt(
            tenant_id=tenant, integration_id=row.id, operation="get", outcome="success",
            started_at=scheduler.utcnow()))
        letter = deadletters.record(session, task_name="hub.call", origin="call",
                                    kwargs={"tenant": tenant, "integration": "crm"},
                                    tenant_id=tenant, integration="crm", error="boom",
                                    error_code="TIMEOUT", attempts=5)
        old_id, log_id, letter_id = row.id, log.id, letter.id

    status, done = hub.json("integrations", "delete", "--tenant", tenant, "--name", "crm")

    assert status == 0 and done["deleted"] is True
    assert hub.json("integrations", "show", "--tenant", tenant, "--name", "crm")[1][
        "error"]["code"] == "NOT_FOUND"
    assert hub.json("integrations", "list", "--tenant", tenant)[1] == []
    with sessions() as session:
        assert session.get(IntegrationLog, log_id).integration_id == old_id
        assert session.get(DeadLetter, letter_id) is not None
    status, again = _add(hub, tenant)  # the name is free for a new integration
    assert status == 0 and again["id"] != str(old_id)


def _schedule_retry(sessions, tenant, name="crm"):
    with sessions() as session, session.begin():
        return scheduler.schedule(session, "hub.call", {
            "tenant": tenant, "integration": name, "operation": "get", "params": {}},
            due_at=scheduler.utcnow() + timedelta(hours=1), tenant_id=tenant).id


def test_delete_refuses_while_calls_wait_unless_forced(hub, tenant, sessions):
    _add(hub, tenant)
    waiting = _schedule_retry(sessions, tenant)

    status, refused = hub.json("integrations", "delete", "--tenant", tenant, "--name", "crm")

    assert status == 1 and refused["error"]["code"] == "CONFLICT"
    assert refused["error"]["details"]["scheduled"] == 1
    assert hub.json("integrations", "show", "--tenant", tenant, "--name", "crm")[0] == 0

    status, done = hub.json("integrations", "delete", "--tenant", tenant, "--name", "crm",
                            "--force")
    assert status == 0 and done["cancelled_retries"] == 1
    with sessions() as session:
        assert session.get(ScheduledTask, waiting).status == "cancelled"


def test_queued_broker_messages_are_found_for_their_integration(client_app, settings, tenant):
    queue = settings.queue(f"unconsumed-{uuid.uuid4().hex[:6]}")
    for integration in ("crm", "crm", "erp"):
        client_app.send_task("hub.call", queue=queue, kwargs={
            "tenant": tenant, "integration": integration, "operation": "get"})
    client_app.send_task("hub.rest.get", queue=queue, args=[tenant, "crm"])
    client_app.send_task("hub.ping", queue=queue)
    broker = queues.broker_client(settings)
    assert broker is not None
    try:
        assert queues.count_calls_for(broker, [queue], tenant, "crm") == 3
        assert queues.count_calls_for(broker, [queue], tenant, "erp") == 1
        assert queues.count_calls_for(broker, [queue], "someone-else", "crm") == 0
    finally:
        broker.delete(queue)
        broker.close()


def test_a_countdown_retry_held_by_a_worker_is_a_queued_call(worker, client_app, hub, tenant,
                                                             settings):
    """A call waiting for its countdown (a retry's backoff, up to HUB_MAX_COUNTDOWN) is no
    longer in the broker's list: a worker took it and holds it, unacknowledged, until it is
    due. Deleting the integration meanwhile is refused like for a call still in the list."""
    _add(hub, tenant)
    held = client_app.send_task("hub.call", countdown=30, kwargs={
        "tenant": tenant, "integration": "crm", "operation": "get", "params": {"path": "/"}})
    broker = queues.broker_client(settings)
    assert broker is not None
    names = [settings.queue(q) for q in ("calls", "celery", "replay")]
    try:
        wait_for(lambda: sum(queues.lengths(broker, names)) == 0, "the worker to take the call")
    finally:
        broker.close()

    status, refused = hub.json("integrations", "delete", "--tenant", tenant, "--name", "crm")

    assert status == 1 and refused["error"]["code"] == "CONFLICT"
    assert refused["error"]["details"]["broker"] == 1
    status, done = hub.json("integrations", "delete", "--tenant", tenant, "--name", "crm",
                            "--force")
    assert status == 0 and done["queued"]["broker"] == 1
    held.revoke()  # it would fail NOT_FOUND when due; nothing else to see
