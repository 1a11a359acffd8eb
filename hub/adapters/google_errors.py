"""What Google's JSON APIs share: their error body (AIP-193) read as hub errors.

Google answers a failed call with ``{"error": {"code": 429, "message": "...",
"status": "RESOURCE_EXHAUSTED", "details": [...]}}``; ``status`` is the
``google.rpc.Code`` name. Not an adapter itself (no ``name``): the Google adapters
use :func:`error_from_body` as their ``parse_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.adapters.base import json_body
from hub.platform.errors import (
    AuthError,
    HubError,
    RateLimited,
    RetryableError,
    UpstreamError,
)

#: google.rpc.Code names that are the caller's or the provider's final word.
_AUTH = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


def google_error(body: Any) -> tuple[str | None, str | None]:
    """``(status, message)`` of a Google error body, or ``(None, None)``."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, None
    status, message = error.get("status"), error.get("message")
    return (str(status) if status else None), (str(message)[:300] if message else None)


def error_from_body(api: str, status: int, content: bytes) -> HubError | None:
    """The hub error a Google error answer means, with Google's own message and
    ``details.google_status``; None when the body is not Google's (a proxy page):
    the hub's mapping by status applies then."""
    code, message = google_error(json_body(content))
    if code is None:
        return None
    text = f"{api} answered {status} {code}: {message or 'no message'}"
    details: dict[str, Any] = {"google_status": code}
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        return RateLimited(text, details=details)
    if code in _AUTH or status in (401, 403):
        return AuthError(text, details=details)
    if status >= 500 or code in _RETRYABLE:
        return RetryableError(text, details=details)
    return UpstreamError(text, details=details)
