"""The ``telegram`` adapter through a real worker, sent by name, against the fake Bot API:
every method, multipart uploads, flood control's retry_after, error bodies, and the bot
token (a URL path segment) kept out of logs, audit rows, events, results and dead letters."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hub.calls import probe
from hub.platform.models import DeadLetter, IntegrationLog
from tests.adapters.conftest import BY_NAME, Caller, register
from tests.adapters.fake_telegram import BOT_ID, FakeTelegram, fake_telegram

CHAT = 424242


@pytest.fixture
def api() -> Iterator[FakeTelegram]:
    with fake_telegram() as fake:
        yield fake


@pytest.fixture
def bot(worker, client_app, tenant, api) -> Caller:  # type: ignore[no-untyped-def]
    """The README's registration: api_key auth, the bot token on stdin."""
    return register(client_app, tenant, "bot", "telegram", api.url, "api_key",
                    {"api_key": api.token})


@BY_NAME
def test_get_me(bot, api, by):
    envelope = bot("get_me", by=by)
    assert envelope["ok"] and envelope["data"]["id"] == BOT_ID
    assert envelope["data"]["username"] == "hub_test_bot"
    assert api.server.seen[-1].path == f"/bot{api.token}/getMe"


@BY_NAME
def test_send_message(bot, api, by):
    envelope = bot("send_message", {"chat_id": CHAT, "text": "Заявка №7 принята",
                                    "reply_markup": {"inline_keyboard": [[
                                        {"text": "OK", "callback_data": "ok"}]]}}, by=by)
    message = envelope["data"]
    assert message["chat"]["id"] == CHAT and message["text"] == "Заявка №7 принята"
    assert api.messages[(CHAT, message["message_id"])]["text"] == "Заявка №7 принята"
    sent = api.server.seen[-1]
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body)["reply_markup"]["inline_keyboard"][0][0]["text"] == "OK"


@BY_NAME
def test_edit_message_text(bot, api, by):
    sent = bot("send_message", {"chat_id": CHAT, "text": "draft"})["data"]
    edited = bot("edit_message_text", {"chat_id": CHAT, "message_id": sent["message_id"],
                                       "text": "final"}, by=by)
    assert edited["data"]["text"] == "final" and "edit_date" in edited["data"]
    error = bot.error("edit_message_text", {"chat_id": CHAT, "message_id": sent["message_id"],
                                            "text": "final"}, by=by)
    assert error["code"] == "UPSTREAM_ERROR" and error["details"]["error_code"] == 400
    assert error["details"]["description"].startswith("Bad Request: message is not modified")
    assert api.times("editMessageText").__len__() == 2  # a 400 is not retried


@BY_NAME
def test_send_document_uploads_multipart(bot, api, by):
    content = b"Flat;Rent\n1;500\n" + bytes(range(256))
    envelope = bot("send_document", {
        "chat_id": CHAT, "caption": "Rent roll", "filename": "rent.csv",
        "mime_type": "text/csv", "document_base64": base64.b64encode(content).decode()}, by=by)
    document = envelope["data"]["document"]
    assert (document["file_name"], document["mime_type"], document["file_size"]) == (
        "rent.csv", "text/csv", len(content))
    assert api.uploads[-1].content == content and envelope["data"]["caption"] == "Rent roll"
    assert api.server.seen[-1].headers["Content-Type"].startswith("multipart/form-data")


def test_send_document_by_file_id_is_json(bot, api):
    envelope = bot("send_document", {"chat_id": CHAT, "document": "BQACAgIAAxkBAAIB"})
    assert envelope["data"]["document"]["file_id"] == "BQACAgIAAxkBAAIB"
    assert api.server.seen[-1].headers["Content-Type"] == "application/json"


def test_a_bad_upload_is_refused_before_telegram_is_called(bot, api):
    error = bot.error("send_document", {"chat_id": CHAT, "filename": "a.bin",
                                        "document_base64": "not base64!"})
    assert error["code"] == "VALIDATION_ERROR" and "base64" in error["message"]
    error = bot.error("send_document", {"chat_id": CHAT})  # neither document nor upload
    assert error["code"] == "VALIDATION_ERROR"
    assert api.times("sendDocument") == []


def test_flood_control_retry_after_is_honoured(bot, api):
    api.flood(2)
    envelope = bot("send_message", {"chat_id": CHAT, "text": "after the flood"})
    assert envelope["ok"] and envelope["attempts"] == 2
    first, second = api.times("sendMessage")
    assert second - first >= 2.0  # parameters.retry_after, not the 10 ms backoff


def test_unknown_chat_is_upstream_error_with_telegrams_description(bot, api):
    error = bot.error("send_message", {"chat_id": 1, "text": "hi"})
    assert error["code"] == "UPSTREAM_ERROR"
    assert error["message"] == "telegram answered 400: Bad Request: chat not found"
    assert len(api.times("sendMessage")) == 1


def test_a_revoked_token_is_auth_error_and_never_shown(worker, client_app, tenant, api):
    wrong = f"{BOT_ID}:AAwrong-token-value-1234567890"
    old = register(client_app, tenant, "old-bot", "telegram", api.url, "api_key",
                   {"api_key": wrong})
    error = old.error("get_me")
    assert error["code"] == "AUTH_ERROR" and error["details"]["description"] == "Unauthorized"
    assert api.server.count(f"/bot{wrong}/getMe") == 2  # re-authenticated once, no more
    assert wrong not in json.dumps(error)


def test_the_bot_token_never_leaves_in_anything_the_hub_writes(bot, api, events, caplog,
                                                              sessions, tenant):
    caplog.set_level(logging.DEBUG)
    ok = bot("send_message", {"chat_id": CHAT, "text": "hello"})
    api.trouble((0, 1.0), (502, 0), (0, 1.0))  # a timeout, a 502, a timeout: dead-lettered
    error = bot.error("send_message", {"chat_id": CHAT, "text": "lost"}, timeout=0.3)
    assert error["code"] == "DEAD_LETTERED"
    sent = events.wait("request.sent")
    events.wait("dead_letter.added")

    with sessions() as session:
        rows = session.scalars(select(IntegrationLog).where(
            IntegrationLog.tenant_id == tenant)).all()
        letters = session.scalars(select(DeadLetter).where(
            DeadLetter.tenant_id == tenant)).all()
        audit = json.dumps([[r.url, r.request_headers, r.request_body, r.response_headers,
                             r.response_body, r.error] for r in rows])
        dead = json.dumps([[d.kwargs, d.error, d.traceback] for d in letters])
    assert len(rows) == 4 and len(letters) == 1
    assert all(r.url.endswith("/bot[REDACTED]/sendMessage") for r in rows)
    assert sent["data"]["url"].endswith("/bot[REDACTED]/sendMessage")
    assert "/bot[REDACTED]/sendMessage timed out" in letters[0].error
    # Every record but the fake provider's own request log (werkzeug: Telegram's side).
    logs = "\n".join(caplog.handler.format(r) for r in caplog.records if r.name != "werkzeug")
    secret, digits = api.token, api.token.split(":", 1)[1]
    for where, text in {"results": json.dumps([ok, error]), "audit rows": audit,
                        "dead letters": dead, "events": json.dumps(events.seen),
                        "logs": logs}.items():
        assert secret not in text and digits not in text, f"the bot token leaked into {where}"
    assert "/bot[REDACTED]/sendMessage" in logs  # the logs did see these requests


def test_health_check_is_get_me_with_the_token_in_the_path(bot, api, services, tenant):
    checked = probe.probe(services, tenant, "bot")
    assert checked["ok"] is True and api.times("getMe")
    assert api.token not in json.dumps(checked, default=str)
