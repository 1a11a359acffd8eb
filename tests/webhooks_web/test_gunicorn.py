"""End to end: the real gunicorn command of the Procfile, a signed webhook over HTTP."""

from __future__ import annotations

import json
import re

import pytest
import requests
import stripe
from sqlalchemy import select

from hub.platform.models import WebhookEvent
from tests.webhooks_web.gunicorn_proc import gunicorn


@pytest.fixture
def server(web_settings, tmp_path):
    # The default worker class, whose concurrent requests share writes.
    with gunicorn(web_settings.broker_url, tmp_path / "metrics") as base:
        yield base


@pytest.mark.slow
def test_signed_webhook_through_gunicorn_is_stored(server, make_endpoint, sessions, sent):
    created = make_endpoint(secrets=["whsec_e2e"])
    body = json.dumps({"id": "evt_e2e", "type": "charge.succeeded"})
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_e2e")
    url = f"{server}/api/v1/webhooks/stripe/{created.token}"

    answers = [requests.post(url, data=body, timeout=10, headers={
        "Stripe-Signature": header, "Content-Type": "application/json"}) for _ in range(2)]

    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["duplicate"] for a in answers] == [False, True]
    with sessions() as session:
        [row] = session.scalars(select(WebhookEvent)
                                .where(WebhookEvent.endpoint_id == created.id)).all()
    assert str(row.id) == answers[0].json()["id"]
    assert sent() == [("hub.webhooks.process", {"event_id": str(row.id)})]
    metrics = requests.get(server + "/metrics", timeout=10).text
    assert 'hub_webhooks_received_total{outcome="accepted",source="stripe"} 1.0' in metrics


@pytest.mark.slow
def test_a_concurrent_burst_with_retries_is_stored_and_enqueued_once_per_event(
        server, make_endpoint, sessions, sent):
    from concurrent.futures import ThreadPoolExecutor

    created = make_endpoint(secrets=["whsec_burst"])
    url = f"{server}/api/v1/webhooks/stripe/{created.token}"
    bodies = [json.dumps({"id": f"evt_burst_{n}", "type": "charge.succeeded"})
              for n in range(60)]

    def post(body: str) -> requests.Response:
        header = stripe.WebhookSignature.generate_signature_header(body, "whsec_burst")
        return requests.post(url, data=body, timeout=30, headers={
            "Stripe-Signature": header, "Content-Type": "application/json"})

    # Each event twice (a provider retrying), 32 at a time.
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, bodies + bodies))

    assert {a.status_code for a in answers} == {202}
    with sessions() as session:
        stored = {str(r.id) for r in session.scalars(
            select(WebhookEvent).where(WebhookEvent.endpoint_id == created.id))}
    assert len(stored) == 60
    assert {a.json()["id"] for a in answers} == stored
    assert sum(not a.json()["duplicate"] for a in answers) == 60
    assert sorted(kwargs["event_id"] for _name, kwargs in sent()) == sorted(stored)
    metrics = requests.get(server + "/metrics", timeout=10).text
    # Every request's event went through the group commit once, whatever the batching.
    assert "hub_webhook_ingest_batch_events_sum 120.0" in metrics


@pytest.mark.slow
def test_the_web_process_exports_its_families_and_none_of_the_workers(server):
    from tasks.workermetrics import METRICS as WORKER
    from webhooks_web.app import METRICS as WEB

    text = requests.get(server + "/metrics", timeout=10).text
    exported = set(re.findall(r"^# TYPE (hub_\S+) ", text, re.MULTILINE))

    # Issue 13 item 19: before, a family without labels was in every process that
    # imported hub.platform.metrics: the web app exported delivery histograms.
    assert {f.name for f in WEB} <= exported
    assert not exported & ({f.name for f in WORKER} - {f.name for f in WEB})
    # Its own families from the first scrape, before any webhook came in.
    assert "hub_webhook_ingest_seconds_count 0.0" in text.splitlines()
    assert "hub_webhook_enqueue_failures_total 0.0" in text.splitlines()
