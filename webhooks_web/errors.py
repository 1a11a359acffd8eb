"""The one error-handler module: every failure becomes JSON ``{"error": {"code", "message"}}``.

HubError messages are written to be shown (they never hold a secret); anything
unexpected is logged and answered with a generic 500.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from hub.platform.errors import HubError, RetryableError, ServiceUnavailable

log = logging.getLogger(__name__)

#: How long a provider is asked to wait when the event store is down.
UNAVAILABLE_RETRY_AFTER = 5


def _body(code: str, message: str, status: int) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def hub_error(exc: HubError) -> Response:
    response = _body(exc.code, exc.message, exc.http_status)
    if isinstance(exc, RetryableError) and exc.retry_after:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, ServiceUnavailable):
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def http_error(exc: HTTPException) -> Response:
    code = (exc.name or "error").upper().replace(" ", "_")
    return _body(code, exc.description or exc.name, exc.code or 500)


def unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in the webhook app")
    return _body("INTERNAL_ERROR", "internal error", 500)


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""
    app.register_error_handler(HubError, hub_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
