"""hub.webhooks.store and the intake's batch write, on the real PostgreSQL: a batch is
stored in one statement, duplicates (earlier or in the same batch) are found, and one
event the database refuses fails alone."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import select

from hub.platform.models import WebhookEvent
from hub.webhooks.store import EventStore, NewEvent, Stored, make_intake_engine
from tests.webhooks_web.conftest import new_id


@pytest.fixture
def store(settings):
    store = EventStore(make_intake_engine(settings))
    yield store
    store.close()


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    tenant: str


@pytest.fixture
def endpoint(make_endpoint, tenant) -> Endpoint:
    return Endpoint(make_endpoint(secrets=["whsec_store"]).id, tenant)


def event(endpoint: Endpoint, external_id: str | None = None,
          event_type: str | None = "x.created", body: bytes = b"{}") -> NewEvent:
    return NewEvent(endpoint.id, endpoint.tenant, "stripe", external_id or new_id(),
                    event_type, {"content-type": "application/json"}, body)


def stored_rows(sessions, endpoint) -> dict[str, WebhookEvent]:
    with sessions() as session:
        return {r.external_id: r for r in session.scalars(
            select(WebhookEvent).where(WebhookEvent.endpoint_id == endpoint.id))}


def test_a_batch_is_stored_and_answered_in_order(store, endpoint, sessions):
    events = [event(endpoint, body=f'{{"n": {n}}}'.encode()) for n in range(5)]

    results = store.add(events)

    rows = stored_rows(sessions, endpoint)
    assert [r.duplicate for r in results] == [False] * 5
    assert [r.id for r in results] == [rows[e.external_id].id for e in events]
    assert [rows[e.external_id].body for e in events] == [e.body for e in events]
    assert {r.status for r in rows.values()} == {"pending"}


def test_earlier_and_same_batch_duplicates_get_the_stored_id(store, endpoint, sessions):
    [first] = store.add([event(endpoint, "evt_seen")])

    results = store.add([event(endpoint, "evt_new"), event(endpoint, "evt_seen"),
                         event(endpoint, "evt_new")])

    rows = stored_rows(sessions, endpoint)
    assert set(rows) == {"evt_seen", "evt_new"}
    assert results == [Stored(rows["evt_new"].id, duplicate=False),
                       Stored(first.id, duplicate=True),
                       Stored(rows["evt_new"].id, duplicate=True)]


def test_the_intake_stores_a_batch_with_one_refused_event_and_enqueues_the_others(
        app, endpoint, sessions, sent):
    import psycopg

    intake = app.extensions["hub"].intake
    good = [event(endpoint), event(endpoint)]
    # PostgreSQL text cannot hold NUL: the whole statement would fail.
    refused = event(endpoint, event_type="bad\x00type")

    outcomes = intake.store_and_enqueue([good[0], refused, good[1]])

    rows = stored_rows(sessions, endpoint)
    assert isinstance(outcomes[1], psycopg.DataError)
    assert set(rows) == {good[0].external_id, good[1].external_id}
    assert [o.id for o in (outcomes[0], outcomes[2])] == [rows[e.external_id].id for e in good]
    assert sorted(kwargs["event_id"] for _name, kwargs in sent()) == sorted(
        str(rows[e.external_id].id) for e in good)


def test_a_write_blocked_on_a_lock_is_503_after_the_lock_timeout_and_stores_nothing(
        services, settings, make_endpoint, sessions):
    import time

    import psycopg

    from hub.dev.embedded import libpq_url
    from hub.platform.errors import ServiceUnavailable
    from hub.webhooks.intake import Intake
    from tests.webhooks_web.test_receive import SECRET, rows, stripe_request

    created = make_endpoint(secrets=[SECRET])
    intake = Intake(services, engine=make_intake_engine(settings, lock_timeout_ms=300))
    body, headers = stripe_request()
    try:
        with psycopg.connect(libpq_url(settings.database_url)) as blocker:
            blocker.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                intake.receive("stripe", created.token, body, headers)
            waited = time.monotonic() - started
            blocker.rollback()
    finally:
        intake.close()

    assert waited < 5  # the lock timeout answered, not the blocker's release
    assert rows(sessions, created.id) == []
