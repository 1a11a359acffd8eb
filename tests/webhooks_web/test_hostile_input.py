"""Hostile input at the webhook door (issue 9, items 8, 9 and 12), through the real app on
the real PostgreSQL and Redis: each answer is a 4xx for the sender alone, nothing of it is
stored, and the requests batched with it are unharmed."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import stripe
from psycopg.types.json import Jsonb

from hub.dev.embedded import libpq_url
from hub.webhooks import processing
from hub.webhooks.intake import Intake
from hub.webhooks.store import INTAKE_APPLICATION_NAME, NewEvent, Stored
from tests.webhooks_web.conftest import new_id, url_of
from tests.webhooks_web.test_receive import SECRET, rows, stripe_request


def signed(payload: dict[str, Any] | str) -> tuple[bytes, dict[str, str]]:
    """A body (a dict as JSON, or raw text) with a valid Stripe signature."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(text, SECRET)
    return text.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def poll(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling another thread's progress with a deadline


# -- item 8: one poisoned request must not fail everyone's batch --------------------------

@pytest.mark.parametrize("field", ["id", "type"])
def test_a_lone_surrogate_in_the_event_id_or_type_is_400_and_stores_nothing(
        client, make_endpoint, sessions, sent, field):
    created = make_endpoint(secrets=[SECRET])
    event = {"id": new_id(), "type": "charge.succeeded", field: "evt_\ud800"}

    response = client.post(url_of(created), data=signed(event)[0], headers=signed(event)[1])

    assert response.status_code == 400
    assert response.json["error"]["code"] == "MALFORMED_BODY"
    assert rows(sessions, created.id) == [] and sent() == []


class RowLock:
    """An open transaction holding the (endpoint, event id) key of a webhook_events row, so
    the intake's INSERT of that event waits on it: a batch in progress, held still."""

    def __init__(self, database_url: str, endpoint_id: uuid.UUID, tenant: str,
                 external_id: str) -> None:
        self.conn = psycopg.connect(libpq_url(database_url))
        self.conn.execute(
            "INSERT INTO webhook_events (endpoint_id, tenant_id, source, external_id, "
            "headers, body) VALUES (%s, %s, 'stripe', %s, %s, '')",
            (endpoint_id, tenant, external_id, Jsonb({})))
        self.database_url = database_url

    def intake_waits_on_it(self) -> bool:
        with psycopg.connect(libpq_url(self.database_url), autocommit=True) as conn:
            return bool(conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", (INTAKE_APPLICATION_NAME,)).fetchone()[0])

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def test_a_poisoned_request_does_not_fail_the_requests_batched_with_it(
        app, make_endpoint, sessions, services, tenant):
    """A's INSERT is held on a row lock; the poisoned request P and another tenant's good
    request B arrive meanwhile and would form the next batch together."""
    mine, theirs = make_endpoint(secrets=[SECRET]), make_endpoint(secrets=[SECRET])
    writer = app.extensions["hub"].intake.writer
    first_id = new_id()
    lock = RowLock(services.settings.database_url, mine.id, tenant, first_id)

    def post(created: Any, request: tuple[bytes, dict[str, str]]) -> Any:
        return app.test_client().post(url_of(created), data=request[0], headers=request[1])

    with ThreadPoolExecutor(3) as pool:
        try:
            first = pool.submit(post, mine, stripe_request(first_id))
            poll(lock.intake_waits_on_it, "the first request's INSERT to wait on the lock")
            poisoned: Future[Any] = pool.submit(
                post, mine, signed({"id": new_id(), "type": "charge.\ud800"}))
            good = pool.submit(post, theirs, stripe_request())
            # Today both queue behind A; once rejected at the door only B does.
            poll(lambda: writer.waiting == (1 if poisoned.done() else 2),
                 "the other requests to queue for the next batch")
        finally:
            lock.release()
        answers = first.result(timeout=30), poisoned.result(timeout=30), good.result(timeout=30)

    assert [a.status_code for a in answers] == [202, 400, 202]
    assert [r.external_id for r in rows(sessions, mine.id)] == [first_id]
    assert len(rows(sessions, theirs.id)) == 1


def test_a_row_the_database_driver_refuses_fails_alone_in_its_batch(app, make_endpoint,
                                                                     sessions, tenant):
    """Whatever a row's failure is (here the driver's UnicodeEncodeError, for a value that
    got past the door), the other rows of the batch are stored and enqueued."""
    created = make_endpoint(secrets=[SECRET])
    intake: Intake = app.extensions["hub"].intake

    def event(external_id: str) -> NewEvent:
        return NewEvent(created.id, tenant, "stripe", external_id, "charge.succeeded", {},
                        b"{}")

    outcomes = intake.store_and_enqueue([event("evt_ok_1"), event("evt_\ud800"),
                                         event("evt_ok_2")])

    assert [type(o) for o in outcomes] == [Stored, UnicodeEncodeError, Stored]
    assert sorted(r.external_id for r in rows(sessions, created.id)) == ["evt_ok_1",
                                                                         "evt_ok_2"]


# -- item 9: parser limits and path values PostgreSQL cannot hold are 4xx ------------------

def test_json_nested_past_the_parser_limit_is_400(client, make_endpoint, sessions):
    created = make_endpoint(secrets=[SECRET])
    body, headers = signed('{"id": "evt_deep", "type": "x", "data": ' + "[" * 5000
                           + "]" * 5000 + "}")

    response = client.post(url_of(created), data=body, headers=headers)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "MALFORMED_BODY"
    assert rows(sessions, created.id) == []


def test_an_opaque_deeply_nested_body_is_stored_and_processed_as_raw_text(
        client, make_endpoint, sessions, services):
    """A token-only endpoint stores a non-JSON body unparsed; processing then meets the
    nesting and must still finish the event rather than fail it for ever."""
    created = make_endpoint(source="plain", scheme="none")
    body = b"[" * 5000 + b"]" * 5000

    response = client.post(url_of(created, "plain"), data=body,
                           headers={"Content-Type": "text/plain"})
    outcome = processing.process_event(services, response.json["id"])

    assert response.status_code == 202
    assert outcome.status == "processed"
    [row] = rows(sessions, created.id)
    assert (row.status, row.body) == ("processed", body)


@pytest.mark.parametrize("where", ["source", "token", "newline"])
def test_a_nul_byte_or_newline_in_the_source_or_token_is_404_not_an_outage(
        client, make_endpoint, where):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request()
    path = {"source": f"/api/v1/webhooks/str%00ipe/{created.token}",
            "token": f"/api/v1/webhooks/stripe/{created.token[:10]}%00{created.token[10:]}",
            "newline": f"/api/v1/webhooks/stripe%0A/{created.token}"}[where]

    response = client.post(path, data=body, headers=headers)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "NOT_FOUND"


# -- item 12: readiness names what is down, never where it is or what the driver said ------

def test_ready_names_the_failing_dependency_without_its_address_or_driver_error(
        broker_down_app, free_port, caplog):
    with caplog.at_level(logging.WARNING):
        response = broker_down_app.test_client().get("/health/ready")

    assert response.status_code == 503
    assert response.json == {"ok": False, "checks": {"postgres": {"ok": True},
                                                     "redis": {"ok": True},
                                                     "broker": {"ok": False}}}
    # The operator still finds the details, in the log.
    assert str(free_port) in caplog.text and "broker" in caplog.text
