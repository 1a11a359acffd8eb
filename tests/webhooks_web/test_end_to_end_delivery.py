"""A provider's signed POST reaches a subscriber, signed again, through a real worker,
on each broker."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from hub.deliveries import subscriptions
from hub.webhooks import endpoints
from tests.hub.inbox import subscriber, wait_for
from tests.webhooks_web.conftest import close_app
from webhooks_web import create_app


def test_github_event_is_processed_once_and_delivered_signed(on_broker, services, tenant):
    svc, settings = services, on_broker.settings
    # The worker's broker: the web app's publisher is one LPUSH on Redis, send_task on
    # RabbitMQ; the worker processes the event and delivers it.
    app = create_app(settings)
    try:
        with subscriber() as receiver:
            with svc.sessions() as session, session.begin():
                created = endpoints.create(session, svc.vault, settings, endpoints.EndpointSpec(
                    tenant=tenant, source="github", scheme="github", secrets=["gh-secret"]))
                new = subscriptions.add(session, svc.vault, settings, tenant=tenant,
                                        url=receiver.url, event_types=["github.*"])
            receiver.secrets.append(new.secret.reveal())
            body = json.dumps({"action": "opened", "number": 7}).encode()
            headers = {
                "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": "sha256=" + hmac.new(b"gh-secret", body,
                                                            hashlib.sha256).hexdigest()}
            path = f"/api/v1/webhooks/github/{created.token}"

            first = app.test_client().post(path, data=body, headers=headers)
            wait_for(lambda: receiver.count() == 1)
            again = app.test_client().post(path, data=body, headers=headers)

            got = receiver.received[0]
    finally:
        close_app(app)

    assert first.status_code == 202 and first.get_json()["duplicate"] is False
    assert again.get_json() == {"id": first.get_json()["id"], "duplicate": True}
    assert got.verified
    delivered = json.loads(got.body)
    assert delivered["id"] == first.get_json()["id"] and delivered["source"] == "github"
    assert delivered["data"] == {"action": "opened", "number": 7}
    assert "gh-secret" not in got.body.decode() and "X-Hub-Signature-256" not in got.headers
    assert receiver.count() == 1
