"""A fake Telegram Bot API on a local port, as core.telegram.org/bots/api documents it.

``/bot<token>/<method>`` with parameters as JSON, a form, multipart/form-data or the
query string; answers ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code", "description"[, "parameters"]}`` with the same HTTP status: 401
"Unauthorized" for an unknown token, 404 "Not Found" for an unknown method, 400
"Bad Request: ..." for bad parameters, 429 "Too Many Requests: retry after N" with
``parameters.retry_after`` (flood control, queued by :meth:`FakeTelegram.flood`).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.adapters.fake_base import Fake, serving

BOT_ID = 7000000001
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _ok(result: Any) -> Response:
    return _answer(200, {"ok": True, "result": result})


def _error(code: int, description: str, **parameters: Any) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return _answer(code, body)


@dataclass
class Upload:
    file_id: str
    name: str
    mime_type: str
    content: bytes


@dataclass
class FakeTelegram(Fake):
    token: str = field(default_factory=lambda: f"{BOT_ID}:AA{secrets.token_urlsafe(24)}")
    chats: set[int] = field(default_factory=lambda: {424242, -100777})
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    #: (method, time.monotonic()) of every request that reached a method.
    calls: list[tuple[str, float]] = field(default_factory=list)
    floods: deque[int] = field(default_factory=deque)
    #: (HTTP status or 0, seconds to stall) of the next requests: a gateway error or a
    #: slow answer, before the method runs.
    troubles: deque[tuple[int, float]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def flood(self, *retry_after: int) -> None:
        """The next requests meet flood control, one per ``retry_after`` given."""
        with self.lock:
            self.floods.extend(retry_after)

    def trouble(self, *troubles: tuple[int, float]) -> None:
        with self.lock:
            self.troubles.extend(troubles)

    def times(self, method: str) -> list[float]:
        with self.lock:
            return [t for m, t in self.calls if m == method]

    # --- the wire ---------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if match is None or match["token"] != self.token:
            return _error(401, "Unauthorized")
        method = match["method"]
        with self.lock:
            self.calls.append((method, time.monotonic()))
            wait = self.floods.popleft() if self.floods else None
            trouble = self.troubles.popleft() if self.troubles else None
        if trouble is not None:
            time.sleep(trouble[1])  # a slow Bot API is what is simulated
            if trouble[0]:
                return _error(trouble[0], "Bad Gateway")
        if wait is not None:
            return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        handler = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", method).lower(), None)
        if handler is None:
            return _error(404, "Not Found")
        with self.lock:
            return handler(_params(request), request)

    def _get_me(self, params: dict[str, Any], request: Request) -> Response:
        return _ok({"id": BOT_ID, "is_bot": True, "first_name": "Hub Test Bot",
                    "username": "hub_test_bot", "can_join_groups": True,
                    "can_read_all_group_messages": False, "supports_inline_queries": False})

    def _chat(self, params: dict[str, Any]) -> int | None:
        try:
            chat_id = int(params.get("chat_id", ""))
        except (TypeError, ValueError):
            return None
        return chat_id if chat_id in self.chats else None

    def _message(self, chat_id: int, **fields: Any) -> dict[str, Any]:
        message = {"message_id": next(self.ids), "date": int(time.time()),
                   "from": {"id": BOT_ID, "is_bot": True, "first_name": "Hub Test Bot"},
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   **fields}
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _send_message(self, params: dict[str, Any], request: Request) -> Response:
        chat_id = self._chat(params)
        if chat_id is None:
            return _error(400, "Bad Request: chat not found")
        if not str(params.get("text", "")).strip():
            return _error(400, "Bad Request: message text is empty")
        return _ok(self._message(chat_id, text=params["text"]))

    def _edit_message_text(self, params: dict[str, Any], request: Request) -> Response:
        chat_id = self._chat(params)
        message = self.messages.get((chat_id or 0, int(params.get("message_id") or 0)))
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        if message.get("text") == params.get("text"):
            return _error(400, "Bad Request: message is not modified: specified new message "
                               "content and reply markup are exactly the same as a current "
                               "content and reply markup of the message")
        message.update(text=params["text"], edit_date=int(time.time()))
        return _ok(message)

    def _send_document(self, params: dict[str, Any], request: Request) -> Response:
        chat_id = self._chat(params)
        if chat_id is None:
            return _error(400, "Bad Request: chat not found")
        upload = request.files.get("document")
        if upload is not None:
            stored = Upload("BQAC" + secrets.token_hex(8), upload.filename or "document",
                            upload.mimetype, upload.read())
            self.uploads.append(stored)
        elif isinstance(params.get("document"), str) and params["document"]:
            stored = Upload(params["document"], "document", "application/octet-stream", b"")
        else:
            return _error(400, "Bad Request: there is no document in the request")
        document = {"file_id": stored.file_id, "file_unique_id": stored.file_id[-8:],
                    "file_name": stored.name, "mime_type": stored.mime_type,
                    "file_size": len(stored.content)}
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return _ok(self._message(chat_id, document=document, **extra))


def _params(request: Request) -> dict[str, Any]:
    """Parameters the way the Bot API takes them: query string, form, or JSON body."""
    params: dict[str, Any] = dict(request.args)
    params.update(request.form)
    if request.mimetype == "application/json":
        params.update(request.get_json(silent=True) or {})
    return params


def fake_telegram() -> AbstractContextManager[FakeTelegram]:
    return serving(FakeTelegram())
