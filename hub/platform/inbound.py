"""The parsed view of a stored webhook event: what handlers run on and what
subscribers receive (the same parsing for both, so a delivery carries exactly
the payload the hub's handlers saw)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from hub.platform.models import WebhookEvent


@dataclass(frozen=True)
class InboundEvent:
    """A recorded webhook event as handlers see it (no raw headers, no secrets)."""

    id: uuid.UUID
    tenant: str
    source: str
    event_type: str
    external_id: str
    received_at: datetime
    payload: Any

    @property
    def qualified_type(self) -> str:
        """``<source>.<event_type>``: what subscriptions' patterns and channels use."""
        return qualified_type(self.source, self.event_type)


def qualified_type(source: str, event_type: str | None) -> str:
    """``<source>.<event_type>``, ``unknown`` for an event whose type the scheme did not
    name: one spelling for subscriptions, deliveries and ``hub events list``."""
    return f"{source}.{event_type or UNKNOWN_TYPE}"


UNKNOWN_TYPE = "unknown"


#: Google's push notification headers (developers.google.com/drive/api/guides/push,
#: "Understand notification message format") and the payload field of each.
GOOGLE_PUSH_HEADERS = {
    "x-goog-channel-id": "channel_id", "x-goog-message-number": "message_number",
    "x-goog-resource-state": "resource_state", "x-goog-resource-id": "resource_id",
    "x-goog-resource-uri": "resource_uri", "x-goog-changed": "changed",
    "x-goog-channel-expiration": "channel_expiration",
}


def google_push_payload(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Google push notification as data: it says everything in headers and nothing
    in its (empty) body. None when ``headers`` are not a Google notification's."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "x-goog-channel-id" not in lowered:
        return None
    payload: dict[str, Any] = {field: lowered[name] for name, field in
                               GOOGLE_PUSH_HEADERS.items() if name in lowered}
    if "changed" in payload:  # "content,properties": what changed in an update
        payload["changed"] = [c.strip() for c in payload["changed"].split(",") if c.strip()]
    return payload


def parse_body(body: bytes, headers: Mapping[str, Any]) -> Any:
    """The event body as JSON, form fields (Slack, some legacy senders) or text; an
    empty Google push notification as its headers' data (:func:`google_push_payload`)."""
    if not body.strip():
        pushed = google_push_payload(headers)
        if pushed is not None:
            return pushed
    text = body.decode("utf-8", "replace")
    content_type = str({k.lower(): v for k, v in headers.items()}.get("content-type", ""))
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nested past the parser's depth (~1,000 levels). An opaque body
        # (token-only or generic HMAC endpoint, non-JSON content type) is stored unparsed,
        # so this is where such a body first meets the parser (issue 9, item 9).
        return {"raw": text}


def inbound_event(row: WebhookEvent) -> InboundEvent:
    """The handler view of a stored event."""
    return InboundEvent(
        id=row.id, tenant=row.tenant_id, source=row.source,
        event_type=row.event_type or UNKNOWN_TYPE, external_id=row.external_id,
        received_at=row.received_at, payload=parse_body(row.body, row.headers or {}))
