"""The inbound sources the seeds name, through the real Flask app: Google Drive/Sheets push
notifications (empty bodies, everything in X-Goog-* headers), generic and custom senders
whose endpoint says where the event id and type are, bodies without an id, and Telegram
updates typed by their kind."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from sqlalchemy import select

from hub.platform.inbound import inbound_event
from hub.platform.models import WebhookEvent
from tests.cli.conftest import Hub
from tests.webhooks_web.conftest import url_of

CHANNEL_TOKEN = "sheets-channel-token-6f1c2b"


def _events(sessions, endpoint_id) -> list[WebhookEvent]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return list(session.scalars(select(WebhookEvent).where(
            WebhookEvent.endpoint_id == uuid.UUID(str(endpoint_id)))
            .order_by(WebhookEvent.received_at)))


def google_headers(number: int, state: str = "update", token: str = CHANNEL_TOKEN,
                   channel: str = "chan-7") -> dict[str, str]:
    """What Google sends for a Drive files.watch channel (no body, no content type)."""
    return {"X-Goog-Channel-ID": channel, "X-Goog-Channel-Token": token,
            "X-Goog-Channel-Expiration": "Sat, 05 Dec 2026 10:00:00 GMT",
            "X-Goog-Resource-ID": "ret-08u3r", "X-Goog-Resource-State": state,
            "X-Goog-Resource-URI": "https://www.googleapis.com/drive/v3/files/1AbC?alt=json",
            "X-Goog-Changed": "content,properties", "X-Goog-Message-Number": str(number)}


def url_of_token(created: dict[str, str], source: str) -> str:
    return f"/api/v1/webhooks/{source}/{created['token']}"


@pytest.fixture
def sheets_endpoint(tenant):  # type: ignore[no-untyped-def]
    """The README's registration: the channel token given to files.watch on stdin."""
    code, created = Hub().json("webhooks", "add", "--tenant", tenant, "--source",
                               "google-sheets", "--scheme", "google", "--secret-stdin",
                               input=CHANNEL_TOKEN)
    assert code == 0 and "secret" not in created
    return created


def test_google_notifications_are_one_event_per_message_number(client, sheets_endpoint,
                                                               sessions, sent):
    path = url_of_token(sheets_endpoint, "google-sheets")
    answers = [client.post(path, headers=google_headers(n, state))
               for n, state in ((1, "sync"), (2, "update"), (3, "update"))]
    again = client.post(path, headers=google_headers(2))

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.json["duplicate"] for a in answers] == [False, False, False]
    assert again.json == {"id": answers[1].json["id"], "duplicate": True}
    stored = _events(sessions, sheets_endpoint["id"])
    assert [(e.external_id, e.event_type) for e in stored] == [
        ("chan-7:1", "sync"), ("chan-7:2", "update"), ("chan-7:3", "update")]
    assert stored[1].body == b"" and stored[1].headers["x-goog-channel-token"] == "[REDACTED]"
    assert len(sent()) == 3
    payload = inbound_event(stored[1]).payload
    assert payload == {"channel_id": "chan-7", "message_number": "2",
                       "resource_state": "update", "resource_id": "ret-08u3r",
                       "resource_uri": "https://www.googleapis.com/drive/v3/files/1AbC?alt=json",
                       "changed": ["content", "properties"],
                       "channel_expiration": "Sat, 05 Dec 2026 10:00:00 GMT"}


def test_google_channel_token_is_the_verification(client, sheets_endpoint, sessions):
    path = url_of_token(sheets_endpoint, "google-sheets")
    wrong = client.post(path, headers=google_headers(1, token="not-the-token"))
    missing = {k: v for k, v in google_headers(1).items() if k != "X-Goog-Channel-Token"}
    headless = client.post(path, headers=missing)
    no_number = {k: v for k, v in google_headers(1).items() if k != "X-Goog-Message-Number"}
    malformed = client.post(path, headers=no_number)

    assert (wrong.status_code, headless.status_code, malformed.status_code) == (401, 401, 400)
    assert CHANNEL_TOKEN not in wrong.get_data(as_text=True)
    assert _events(sessions, sheets_endpoint["id"]) == []


def _signed(body: bytes, secret: str = "generic-secret") -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def test_generic_sender_with_id_header_and_type_path(client, make_endpoint, sessions):
    created = make_endpoint(source="crm", scheme="hmac-sha256", secrets=["generic-secret"],
                            config={"event_id": {"header": "X-Delivery-Id"},
                                    "event_type": {"path": "event.kind"}})
    first = json.dumps({"event": {"kind": "deal.won"}, "amount": 10}).encode()
    retry = json.dumps({"amount": 10, "event": {"kind": "deal.won"}}).encode()  # re-serialised
    answers = [client.post(url_of(created, "crm"), data=body,
                           headers={**_signed(body), "X-Delivery-Id": "dlv-1"})
               for body in (first, retry)]

    assert [a.json["duplicate"] for a in answers] == [False, True]
    [stored] = _events(sessions, created.id)
    assert (stored.external_id, stored.event_type) == ("dlv-1", "deal.won")


def test_custom_source_reads_id_from_the_body_even_without_a_json_content_type(
        client, make_endpoint, sessions):
    created = make_endpoint(source="erp", scheme="none",
                            config={"event_id": {"path": "meta.uuid"},
                                    "event_type": {"header": "X-Erp-Event"}})
    body = json.dumps({"meta": {"uuid": "u-123"}, "order": 5}).encode()
    answer = client.post(url_of(created, "erp"), data=body,
                         headers={"Content-Type": "text/plain", "X-Erp-Event": "order.paid"})

    assert answer.status_code == 202
    [stored] = _events(sessions, created.id)
    assert (stored.external_id, stored.event_type) == ("u-123", "order.paid")


def test_without_an_id_identical_bytes_are_a_repeat_and_empty_bodies_never_are(
        client, make_endpoint, sessions):
    created = make_endpoint(source="legacy", scheme="none")
    body = b'{"status": "paid", "order": 9}'
    same = [client.post(url_of(created, "legacy"), data=body,
                        headers={"Content-Type": "application/json"}).json for _ in range(2)]
    empty = [client.post(url_of(created, "legacy"), data=b"").json for _ in range(2)]

    assert [a["duplicate"] for a in same] == [False, True]
    assert [a["duplicate"] for a in empty] == [False, False]
    ids = sorted(e.external_id for e in _events(sessions, created.id))
    assert ids[0] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert [i.split(":")[0] for i in ids[1:]] == ["unidentified", "unidentified"]


@pytest.mark.parametrize(("update", "kind"), [
    ({"update_id": 10, "message": {"message_id": 1, "text": "hi"}}, "message"),
    ({"update_id": 11, "callback_query": {"id": "cb1", "data": "ok"}}, "callback_query"),
    ({"update_id": 12, "my_chat_member": {"chat": {"id": 1}}}, "my_chat_member"),
])
def test_telegram_update_id_and_kind(client, make_endpoint, sessions, update, kind):
    created = make_endpoint(source="telegram", scheme="telegram", secrets=["tg-secret-1"])
    answer = client.post(url_of(created, "telegram"), data=json.dumps(update),
                         headers={"Content-Type": "application/json",
                                  "X-Telegram-Bot-Api-Secret-Token": "tg-secret-1"})

    assert answer.status_code == 202
    [stored] = _events(sessions, created.id)
    assert (stored.external_id, stored.event_type) == (str(update["update_id"]), kind)


def test_cli_id_and_type_options(tenant, sessions):
    hub = Hub()
    both = hub("webhooks", "add", "--tenant", tenant, "--source", "x", "--scheme", "none",
               "--id-header", "X-Id", "--id-path", "id")
    bad = hub("webhooks", "add", "--tenant", tenant, "--source", "x", "--scheme", "none",
              "--type-path", "data.[")
    code, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "x",
                             "--scheme", "none", "--id-header", "X-Event-ID",
                             "--type-path", "type")
    code_show, shown = hub.json("webhooks", "show", "--tenant", tenant, "--id", created["id"])

    assert both.exit_code == 2 and "exclude each other" in both.output
    assert bad.exit_code == 1 and "JMESPath" in bad.output
    assert code == code_show == 0
    assert shown["config"] == {"event_id": {"header": "x-event-id"},
                               "event_type": {"path": "type"}}
