"""Telegram Bot API (seed 001): send and edit messages, upload documents, ``getMe``.

Requests go to ``<base URL>/bot<token>/<method>`` (core.telegram.org/bots/api,
"Making requests"): the token is a path segment, so
:attr:`TelegramAdapter.auth_defaults` has the ``api_key`` strategy put it there
(``auth.in = "path"``, ``auth.prefix = "bot"``) and this module never sees it. Being
a credential, it is masked in every URL the hub logs, audits, publishes or returns.

Every answer is ``{"ok": true, "result": ...}``; the operations return ``result``.
Errors are ``{"ok": false, "error_code", "description", "parameters"}``
(:func:`telegram_error`): 429 is retried after
``parameters.retry_after`` seconds (flood control), 401 is AUTH_ERROR, 5xx are
retried, any other code is UPSTREAM_ERROR with Telegram's description.

``send_document`` takes ``document`` (a file_id or an HTTP URL Telegram fetches
itself, sent as JSON) or ``document_base64`` + ``filename`` (uploaded as
multipart/form-data, at most :data:`MAX_UPLOAD_BYTES`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from hub.adapters.base import (
    Adapter,
    FilePart,
    IntegrationView,
    Operation,
    OutboundRequest,
    join_url,
    json_body,
)
from hub.adapters.transform import closed_object
from hub.platform.errors import (
    AuthError,
    HubError,
    RateLimited,
    RetryableError,
    UpstreamError,
    ValidationError,
)

#: Largest upload accepted in a task message (Telegram takes 50 MB, but the file
#: travels base64-encoded through the broker and the result backend).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_TEXT = 4096  # Bot API: "1-4096 characters after entities parsing"
MAX_CAPTION = 1024

_CHAT_ID = {"type": ["integer", "string"], "minLength": 1, "maxLength": 128}
_PARSE_MODE = {"enum": ["MarkdownV2", "HTML", "Markdown"]}
_OBJECT = {"type": "object"}



_SEND_MESSAGE = closed_object({
    "chat_id": _CHAT_ID, "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
    "parse_mode": _PARSE_MODE, "entities": {"type": "array"},
    "message_thread_id": {"type": "integer"}, "disable_notification": {"type": "boolean"},
    "protect_content": {"type": "boolean"}, "reply_parameters": _OBJECT,
    "link_preview_options": _OBJECT, "reply_markup": _OBJECT,
}, ["chat_id", "text"])

_EDIT_MESSAGE_TEXT = closed_object({
    "chat_id": _CHAT_ID, "message_id": {"type": "integer"},
    "inline_message_id": {"type": "string", "minLength": 1},
    "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
    "parse_mode": _PARSE_MODE, "entities": {"type": "array"},
    "link_preview_options": _OBJECT, "reply_markup": _OBJECT,
}, ["text"], oneOf=[{"required": ["chat_id", "message_id"]},
                    {"required": ["inline_message_id"]}])

_SEND_DOCUMENT = closed_object({
    "chat_id": _CHAT_ID,
    "document": {"type": "string", "minLength": 1, "maxLength": 2048},
    "document_base64": {"type": "string", "minLength": 1,
                        "maxLength": 4 * ((MAX_UPLOAD_BYTES + 2) // 3)},
    "filename": {"type": "string", "minLength": 1, "maxLength": 255},
    "mime_type": {"type": "string", "minLength": 3, "maxLength": 255},
    "caption": {"type": "string", "maxLength": MAX_CAPTION}, "parse_mode": _PARSE_MODE,
    "message_thread_id": {"type": "integer"}, "disable_notification": {"type": "boolean"},
    "protect_content": {"type": "boolean"}, "reply_parameters": _OBJECT,
    "reply_markup": _OBJECT,
}, ["chat_id"], oneOf=[{"required": ["document"]},
                       {"required": ["document_base64", "filename"]}])

#: What the document's bytes and name are sent as, not Bot API fields themselves.
_UPLOAD_PARAMS = ("document_base64", "filename", "mime_type")


def form_value(value: Any) -> str:
    """A Bot API parameter as a form field: objects and arrays JSON-serialised, booleans
    ``true``/``false`` (the Bot API's own spelling), the rest as text."""
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value)
    return str(value)


def decode_upload(params: Mapping[str, Any]) -> bytes:
    """The bytes of ``document_base64``. Raises ValidationError when it is not base64 or
    decodes to more than :data:`MAX_UPLOAD_BYTES`."""
    try:
        content = base64.b64decode(str(params["document_base64"]), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("document_base64 is not valid base64") from None
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"document is over the {MAX_UPLOAD_BYTES}-byte upload limit")
    return content


def telegram_error(status: int, body: Mapping[str, Any]) -> HubError:
    """The hub error of a Bot API error answer ``{"ok": false, ...}``."""
    raw_code, raw_parameters = body.get("error_code"), body.get("parameters")
    code = raw_code if isinstance(raw_code, int) else status
    description = str(body.get("description") or f"error {code}")[:500]
    parameters: Mapping[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
    details: dict[str, Any] = {"status_code": status, "error_code": code,
                               "description": description}
    if "migrate_to_chat_id" in parameters:  # a group became a supergroup
        details["migrate_to_chat_id"] = parameters["migrate_to_chat_id"]
    message = f"telegram answered {code}: {description}"
    if code == 429 or status == 429:
        retry_after = parameters.get("retry_after")
        seconds = float(retry_after) if isinstance(retry_after, (int, float)) else None
        details["retry_after"] = seconds
        return RateLimited(message, details=details, retry_after=seconds)
    if code == 401 or status == 401:
        return AuthError(message, details=details)
    if status >= 500 or code >= 500:
        return RetryableError(message, details=details)
    return UpstreamError(message, details=details)


class TelegramAdapter(Adapter):
    name = "telegram"
    health_path = "/getMe"
    auth_defaults: ClassVar[Mapping[str, Any]] = {"in": "path", "prefix": "bot"}
    operations = (
        Operation("get_me", method="GET", path="/getMe",
                  params_schema=closed_object({}, []), response_map="result",
                  description="The bot's own user (checks the token)."),
        Operation("send_message", method="POST", path="/sendMessage",
                  params_schema=_SEND_MESSAGE, response_map="result",
                  description="Send a text message; answers the sent Message."),
        Operation("edit_message_text", method="POST", path="/editMessageText",
                  params_schema=_EDIT_MESSAGE_TEXT, response_map="result",
                  description="Edit a message's text; answers the Message (or true for "
                              "an inline message)."),
        Operation("send_document", method="POST", path="/sendDocument",
                  params_schema=_SEND_DOCUMENT, response_map="result",
                  description="Send a file: by file_id/URL, or uploaded (multipart)."),
    )

    def build_request(self, integration: IntegrationView, op: Operation,
                      params: Mapping[str, Any]) -> OutboundRequest:
        """JSON for every method; multipart/form-data for a document upload."""
        if op.name != "send_document" or "document_base64" not in params:
            return super().build_request(integration, op, params)
        part = FilePart(str(params["filename"]), decode_upload(params),
                        str(params.get("mime_type") or "application/octet-stream"))
        form = {k: form_value(v) for k, v in params.items() if k not in _UPLOAD_PARAMS}
        return OutboundRequest(method="POST", url=join_url(integration.base_url, op.path),
                               form=form, files={"document": part})

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        """The answer's JSON; an ``{"ok": false}`` body raises its error even in a 2xx."""
        body = json_body(content)
        if isinstance(body, dict) and body.get("ok") is False:
            raise telegram_error(status, body)
        return super().parse_response(op, status, headers, content)

    def parse_error(self, op: Operation, status: int, headers: Mapping[str, str],
                    content: bytes) -> HubError | None:
        """The hub error of Telegram's ``{"ok": false, ...}`` error body (None for a body
        that is not one: a proxy's error page is judged by its status)."""
        body = json_body(content)
        if not isinstance(body, dict) or body.get("ok") is not False:
            return None
        return telegram_error(status, body)
