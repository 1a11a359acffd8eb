"""POST /api/v1/webhooks/<source>/<token> through the Flask test client, on the real
PostgreSQL and Redis: every answer of DESIGN §5."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time

import pytest
import stripe
from sqlalchemy import select

from hub.platform.db import transaction
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import WebhookEndpoint, WebhookEvent
from hub.platform.services import Services
from hub.webhooks import endpoints, processing
from tests.webhooks_web.conftest import close_app, new_id, url_of
from webhooks_web import create_app

SECRET = "whsec_ingress_test_secret"


def stripe_request(event_id: str | None = None, secret: str = SECRET, ts: int | None = None,
                   event_type: str = "customer.created") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": event_id or new_id(), "type": event_type,
                       "data": {"object": {"id": "cus_1"}}}).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def rows(sessions, endpoint_id) -> list[WebhookEvent]:
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent)
                                    .where(WebhookEvent.endpoint_id == endpoint_id)))


def test_signed_event_is_stored_pending_then_enqueued(client, make_endpoint, sessions, sent):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request("evt_stored")

    response = client.post(url_of(created), data=body, headers=headers)

    assert response.status_code == 202
    assert response.json["duplicate"] is False
    [row] = rows(sessions, created.id)
    assert str(row.id) == response.json["id"]
    assert (row.status, row.external_id, row.event_type) == ("pending", "evt_stored",
                                                             "customer.created")
    assert row.body == body
    assert row.headers["stripe-signature"] == "[REDACTED]"
    assert sent() == [("hub.webhooks.process", {"event_id": response.json["id"]})]


def test_retried_event_is_a_duplicate_stored_and_enqueued_once(client, make_endpoint, sessions,
                                                               sent):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request("evt_retried")

    first = client.post(url_of(created), data=body, headers=headers)
    second = client.post(url_of(created), data=body, headers=headers)

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json == {"id": first.json["id"], "duplicate": True}
    assert len(rows(sessions, created.id)) == 1
    assert len(sent()) == 1


def test_same_event_id_on_two_endpoints_is_two_events(client, make_endpoint, sessions):
    one, two = make_endpoint(secrets=[SECRET]), make_endpoint(secrets=[SECRET])
    body, headers = stripe_request("evt_shared")

    answers = [client.post(url_of(e), data=body, headers=headers).json for e in (one, two)]

    assert [a["duplicate"] for a in answers] == [False, False]
    assert answers[0]["id"] != answers[1]["id"]


@pytest.mark.parametrize("tamper", ["wrong_secret", "modified_body", "stale", "missing_header"])
def test_bad_signature_is_401_and_stores_nothing(client, make_endpoint, sessions, sent, tamper):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request(
        secret="whsec_wrong" if tamper == "wrong_secret" else SECRET,
        ts=int(time.time()) - 301 if tamper == "stale" else None)
    if tamper == "modified_body":
        body = body.replace(b"cus_1", b"cus_2")
    if tamper == "missing_header":
        del headers["Stripe-Signature"]

    response = client.post(url_of(created), data=body, headers=headers)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "INVALID_SIGNATURE"
    assert SECRET not in response.get_data(as_text=True)
    assert rows(sessions, created.id) == [] and sent() == []


def test_unknown_token_wrong_source_and_disabled_endpoint_are_404(client, make_endpoint,
                                                                  services, tenant):
    created = make_endpoint(secrets=[SECRET])
    disabled = make_endpoint(secrets=[SECRET])
    with transaction(services.sessions) as session:
        endpoints.set_active(session, services.settings, tenant, disabled.id, False)
    body, headers = stripe_request()

    answers = [client.post(url, data=body, headers=headers) for url in (
        "/api/v1/webhooks/stripe/not-a-token", url_of(created, "github"), url_of(disabled))]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert {a.json["error"]["code"] for a in answers} == {"NOT_FOUND"}


def test_source_ip_outside_the_allow_list_is_403(client, make_endpoint, sessions):
    created = make_endpoint(secrets=[SECRET], allowed_ips=["10.0.0.0/8"])
    body, headers = stripe_request()

    refused = client.post(url_of(created), data=body, headers=headers)
    allowed = client.post(url_of(created), data=body, headers=headers,
                          environ_base={"REMOTE_ADDR": "10.1.2.3"})

    assert refused.status_code == 403 and refused.json["error"]["code"] == "FORBIDDEN"
    assert allowed.status_code == 202
    assert len(rows(sessions, created.id)) == 1


def test_body_over_the_limit_is_413(web_settings, make_endpoint, sessions):
    app = create_app(dataclasses.replace(web_settings, webhook_max_body=512))
    try:
        created = make_endpoint(secrets=[SECRET])
        body, headers = stripe_request()
        body = body[:-1] + b', "pad": "' + b"x" * 600 + b'"}'

        response = app.test_client().post(url_of(created), data=body, headers=headers)
    finally:
        close_app(app)

    assert response.status_code == 413
    assert response.json["error"]["code"] in {"PAYLOAD_TOO_LARGE", "REQUEST_ENTITY_TOO_LARGE"}
    assert rows(sessions, created.id) == []


def test_malformed_json_with_a_valid_signature_is_400(client, make_endpoint, sessions):
    created = make_endpoint(source="github", scheme="github", secrets=["gh-secret"])
    body = b'{"action": "opened", '
    digest = hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()

    response = client.post(url_of(created, "github"), data=body, headers={
        "X-Hub-Signature-256": "sha256=" + digest, "Content-Type": "application/json"})

    assert response.status_code == 400 and response.json["error"]["code"] == "MALFORMED_BODY"
    assert rows(sessions, created.id) == []


def test_endpoint_over_its_rate_limit_is_429_with_retry_after(client, make_endpoint):
    created = make_endpoint(secrets=[SECRET], rate_limit_per_minute=2)

    statuses = [client.post(url_of(created), data=b, headers=h)
                for b, h in (stripe_request() for _ in range(3))]

    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert statuses[2].json["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(statuses[2].headers["Retry-After"]) <= 60


def test_event_types_outside_the_filter_are_acknowledged_and_dropped(client, make_endpoint,
                                                                     sessions, sent):
    created = make_endpoint(secrets=[SECRET], event_types=["invoice.*"])

    dropped = client.post(url_of(created), data=(r := stripe_request())[0], headers=r[1])
    kept = client.post(url_of(created), data=(r := stripe_request(event_type="invoice.paid"))[0],
                       headers=r[1])

    assert dropped.status_code == 202 and dropped.json["ignored"] is True
    assert kept.status_code == 202 and "ignored" not in kept.json
    assert [row.event_type for row in rows(sessions, created.id)] == ["invoice.paid"]
    assert len(sent()) == 1


def test_previous_secret_keeps_working_after_a_rotation(app, client, make_endpoint, services,
                                                        tenant):
    created = make_endpoint(secrets=[SECRET])
    with transaction(services.sessions) as session:
        endpoints.rotate_secret(session, services.vault, tenant, created.id, "whsec_next")
    app.extensions["hub"].intake.clear_cache()

    answers = [client.post(url_of(created), data=b, headers=h).status_code
               for b, h in (stripe_request(secret=s) for s in (SECRET, "whsec_next", "whsec_x"))]

    assert answers == [202, 202, 401]


def test_endpoint_counters_are_written(app, client, make_endpoint, services):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request()
    for _ in range(2):
        client.post(url_of(created), data=body, headers=headers)
    client.post(url_of(created), data=body, headers={})

    app.extensions["hub"].intake.counters.flush(services.sessions, force=True)

    with services.sessions() as session:
        row = session.get(WebhookEndpoint, created.id)
    assert (row.received_count, row.duplicate_count, row.rejected_count) == (1, 1, 1)
    assert row.last_received_at is not None


def test_database_down_is_503_and_nothing_is_written(app, web_settings, make_endpoint, sessions,
                                                     sent, free_port):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request()
    down = create_app(dataclasses.replace(
        web_settings, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port}/hub"))
    try:
        response = down.test_client().post(url_of(created), data=body, headers=headers)
    finally:
        close_app(down)

    assert response.status_code == 503
    assert response.json["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"]
    assert rows(sessions, created.id) == [] and sent() == []


def test_database_refusing_writes_after_lookup_is_503_and_nothing_half_written(
        web_settings, make_endpoint, sessions, sent, read_only_database_url):
    # A failed-over primary that came back read-only: the endpoint is found, the INSERT fails.
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request()
    refusing = create_app(dataclasses.replace(web_settings, database_url=read_only_database_url))
    try:
        response = refusing.test_client().post(url_of(created), data=body, headers=headers)
    finally:
        close_app(refusing)

    assert response.status_code == 503
    assert rows(sessions, created.id) == [] and sent() == []


def test_broker_down_after_commit_still_202_and_the_row_is_pending(web_settings, make_endpoint,
                                                                   sessions, broker_down_app):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request("evt_no_broker")

    response = broker_down_app.test_client().post(url_of(created), data=body, headers=headers)

    assert response.status_code == 202
    [row] = rows(sessions, created.id)
    assert (str(row.id), row.status) == (response.json["id"], "pending")
    # ...and beat's sweeper enqueues it once it has waited HUB_WEBHOOK_PENDING_AFTER.
    sweeper = Services(dataclasses.replace(web_settings, webhook_pending_after=0),
                       RecordingDispatcher())
    try:
        processing.sweep(sweeper)
    finally:
        sweeper.close()
    assert ("hub.webhooks.process", {"event_id": str(row.id)}) in [
        (name, kwargs) for name, kwargs, _queue in sweeper.dispatcher.sent]


def test_schemes_other_than_stripe_go_through_the_same_path(client, make_endpoint, sessions):
    created = make_endpoint(source="tg", scheme="telegram", secrets=["tg_token"])
    body = json.dumps({"update_id": 99, "message": {"text": "hi"}}).encode()

    response = client.post(url_of(created, "tg"), data=body, headers={
        "X-Telegram-Bot-Api-Secret-Token": "tg_token", "Content-Type": "application/json"})

    assert response.status_code == 202
    assert [r.external_id for r in rows(sessions, created.id)] == ["99"]


def test_wrong_method_and_unknown_path_answer_json(client):
    assert client.get("/api/v1/webhooks/stripe/x").json["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert client.get("/nowhere").json["error"]["code"] == "NOT_FOUND"


def test_metrics_count_outcomes_by_source(client, make_endpoint):
    created = make_endpoint(source="metrics-src", secrets=[SECRET])
    body, headers = stripe_request()
    client.post(url_of(created, "metrics-src"), data=body, headers=headers)

    text = client.get("/metrics").get_data(as_text=True)

    assert 'hub_webhooks_received_total{outcome="accepted",source="metrics-src"}' in text
    assert "hub_webhook_ingest_seconds_bucket" in text



def test_slack_url_verification_is_answered_with_the_challenge(client, make_endpoint, sessions):
    from slack_sdk.signature import SignatureVerifier

    created = make_endpoint(source="slack", scheme="slack", secrets=["slack-signing"])
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aB",
                       "token": "legacy"}).encode()
    ts = str(int(time.time()))
    signature = SignatureVerifier("slack-signing").generate_signature(timestamp=ts, body=body)

    response = client.post(url_of(created, "slack"), data=body, headers={
        "X-Slack-Signature": signature, "X-Slack-Request-Timestamp": ts,
        "Content-Type": "application/json"})

    assert (response.status_code, response.json) == (200, {"challenge": "3eZbrw1aB"})
    assert rows(sessions, created.id) == []


def test_pooled_connection_killed_by_a_restart_is_replaced_transparently(client, make_endpoint,
                                                                         sessions, settings):
    import psycopg

    from hub.dev.embedded import libpq_url
    from hub.webhooks.store import INTAKE_APPLICATION_NAME

    created = make_endpoint(secrets=[SECRET])
    assert client.post(url_of(created), data=(r := stripe_request())[0],
                       headers=r[1]).status_code == 202
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (INTAKE_APPLICATION_NAME,)).fetchone()[0]

    response = client.post(url_of(created), data=(r := stripe_request())[0], headers=r[1])

    assert killed >= 1
    assert response.status_code == 202
    assert len(rows(sessions, created.id)) == 2


def test_an_event_field_postgresql_cannot_hold_is_400_and_stores_nothing(client, make_endpoint,
                                                                         sessions, sent):
    created = make_endpoint(secrets=[SECRET])
    body, headers = stripe_request(event_type="charge.\u0000succeeded")

    response = client.post(url_of(created), data=body, headers=headers)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "MALFORMED_BODY"
    assert rows(sessions, created.id) == [] and sent() == []


def test_concurrent_requests_with_retries_are_stored_and_enqueued_once_each(
        app, make_endpoint, sessions, sent):
    from concurrent.futures import ThreadPoolExecutor

    created = make_endpoint(secrets=[SECRET])
    requests_ = [stripe_request() for _ in range(40)]
    # Every event sent twice, as providers retry: 80 requests from 16 threads at once.
    posts = requests_ + requests_

    def post(request):
        body, headers = request
        return app.test_client().post(url_of(created), data=body, headers=headers)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, posts))

    assert {a.status_code for a in answers} == {202}
    stored = {str(r.id) for r in rows(sessions, created.id)}
    assert len(stored) == 40
    assert {a.json["id"] for a in answers} == stored
    assert sum(not a.json["duplicate"] for a in answers) == 40
    assert sorted(kwargs["event_id"] for _name, kwargs in sent()) == sorted(stored)


def test_an_endpoint_secret_no_key_opens_is_a_generic_500(client, make_endpoint, sessions,
                                                          caplog):
    # Issue 9 item 13: the answer named the endpoint id and hinted at the keys.
    from hub.platform.vault import Vault, generate_key

    created = make_endpoint(secrets=[SECRET])
    with transaction(sessions) as session:
        row = session.get(WebhookEndpoint, created.id)
        row.secret = Vault([generate_key()]).encrypt([SECRET])
    body, headers = stripe_request()

    try:
        response = client.post(url_of(created), data=body, headers=headers)

        assert response.status_code == 500
        assert response.json == {"error": {"code": "INTERNAL_ERROR",
                                           "message": "internal error"}}
        assert rows(sessions, created.id) == []
    finally:
        # No secret no key opens is left in the session's database: `hub keys rotate`
        # (tests/cli/test_keys_cli.py) exits 1 on one, whichever test left it.
        with transaction(sessions) as session:
            session.delete(session.get(WebhookEndpoint, created.id))
    # The operator still learns which endpoint and why, from the log.
    assert any(str(created.id) in r.getMessage() and "VAULT_ERROR" in r.getMessage()
               for r in caplog.records)
