"""GET /metrics carries the hub's state read at scrape time: queue depths, open
webhook events by status, dead letters; a source that is down is left out."""

from __future__ import annotations

import re
import time

from sqlalchemy import func, select

from hub.ops import dlq
from hub.platform.models import WebhookEvent
from tests.webhooks_web.conftest import url_of
from tests.webhooks_web.test_receive import SECRET, stripe_request


def gauge(text: str, name: str, **labels: str) -> float | None:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{selector}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_metrics_show_queue_depth_open_events_and_dead_letters(client, broker, settings,
                                                               make_endpoint, sessions, sent):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request()
    assert client.post(url_of(created), data=body, headers=headers).status_code == 202
    broker.lpush(settings.queue("calls"), "x", "y", "z")
    try:
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        broker.delete(settings.queue("calls"))

    with sessions() as session:
        pending = session.scalar(select(func.count()).select_from(WebhookEvent)
                                 .where(WebhookEvent.status == "pending"))
        letters = dlq.count(session)
    assert gauge(text, "hub_queue_messages", queue="calls") == 3
    assert gauge(text, "hub_queue_messages", queue="webhooks") == len(sent())
    assert gauge(text, "hub_webhook_events", status="pending") == pending >= 1
    assert gauge(text, "hub_webhook_events", status="dead") is not None
    assert gauge(text, "hub_dead_letters") == letters


def test_metrics_still_answer_when_the_broker_is_down(broker_down_app):
    response = broker_down_app.test_client().get("/metrics")

    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "hub_queue_messages" not in text
    assert gauge(text, "hub_dead_letters") is not None


def test_metrics_show_when_each_maintenance_task_last_succeeded(client, services):
    from hub.ops import maintenance

    maintenance.record_success(services, "hub.maintenance.retention", at=1767614400.25)
    maintenance.record_success(services, "hub.maintenance.enqueue_due")

    text = client.get("/metrics").get_data(as_text=True)

    name = "hub_maintenance_last_success_timestamp_seconds"
    assert gauge(text, name, task="hub.maintenance.retention") == 1767614400.25
    newest = gauge(text, name, task="hub.maintenance.enqueue_due")
    assert newest is not None and time.time() - 60 < newest <= time.time()
