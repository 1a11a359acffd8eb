"""The one error-handler module: every failure becomes JSON ``{"error": {"code", "message"}}``.

HubError messages of client errors (4xx) are written to be shown (they never hold
a secret); a server fault, expected (a HubError of status 5xx, e.g. VaultError) or
not, is logged and answered with a generic 500, except ServiceUnavailable (503 with
Retry-After: the provider should retry).
"""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from hub.platform.errors import (
    HubError,
    PayloadTooLarge,
    RetryableError,
    ServiceUnavailable,
)
from webhooks_web.state import state

log = logging.getLogger(__name__)

#: How long a provider is asked to wait when the event store is down.
UNAVAILABLE_RETRY_AFTER = 5


def _body(code: str, message: str, status: int) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def hub_error(exc: HubError) -> Response:
    if exc.http_status >= 500 and not isinstance(exc, ServiceUnavailable):
        # A server fault answers like any other (issue 9 item 13): its message is
        # for operators (a VaultError names the endpoint and the key setting), not
        # for whoever posted. ServiceUnavailable is the one the caller acts on.
        log.error("webhook request failed: %s: %s", exc.code, exc.message)
        return _body("INTERNAL_ERROR", "internal error", 500)
    response = _body(exc.code, exc.message, exc.http_status)
    if isinstance(exc, RetryableError) and exc.retry_after:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, ServiceUnavailable):
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def http_error(exc: HTTPException) -> Response:
    code = (exc.name or "error").upper().replace(" ", "_")
    return _body(code, exc.description or exc.name, exc.code or 500)


def too_large(exc: RequestEntityTooLarge) -> Response:
    """A Content-Length over the limit, refused unread: the intake's own 413."""
    limit = state().settings.webhook_max_body
    return hub_error(PayloadTooLarge(f"body over the {limit} byte limit"))


def unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in the webhook app")
    return _body("INTERNAL_ERROR", "internal error", 500)


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""
    app.register_error_handler(HubError, hub_error)
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
