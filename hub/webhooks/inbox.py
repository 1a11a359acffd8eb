"""Operator views of the webhook inbox (``hub events list|show``), tenant-scoped."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.deliveries import sending
from hub.platform.db import filter_clauses
from hub.platform.errors import NotFound
from hub.platform.inbound import parse_body, qualified_type
from hub.platform.models import EVENT_STATUSES, Delivery, WebhookEvent
from hub.platform.redaction import redact_headers

#: Status names an operator may filter on.
STATUSES = EVENT_STATUSES


def summary(row: WebhookEvent) -> dict[str, Any]:
    """One line of ``hub events list``; ``type`` is spelled as on its deliveries
    (``<source>.<event_type>``, ``unknown`` when the scheme names none)."""
    return {
        "id": str(row.id), "tenant": row.tenant_id, "source": row.source,
        "type": qualified_type(row.source, row.event_type), "event_type": row.event_type, "external_id": row.external_id, "status": row.status,
        "attempts": row.attempts, "received_at": row.received_at,
        "processed_at": row.processed_at, "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
    }


def list_events(session: Session, tenant: str, *, status: str | None = None,
                source: str | None = None, since: datetime | None = None,
                until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The tenant's most recent events, newest first, optionally filtered (received
    from ``since`` on, before ``until``)."""
    query = select(WebhookEvent).where(WebhookEvent.tenant_id == tenant, *filter_clauses(
        [(status or None, WebhookEvent.status), (source or None, WebhookEvent.source)],
        WebhookEvent.received_at, since, until))
    rows = session.scalars(query.order_by(WebhookEvent.received_at.desc()).limit(limit))
    return [summary(r) for r in rows]


def show_event(session: Session, tenant: str, event_id: str) -> dict[str, Any]:
    """One event with its parsed payload, redacted headers and its sending.

    Raises NotFound for an unknown id or another tenant's event.
    """
    try:
        key = uuid.UUID(str(event_id))
    except ValueError:
        raise NotFound(f"no webhook event {event_id}") from None
    row = session.scalars(select(WebhookEvent).where(
        WebhookEvent.id == key, WebhookEvent.tenant_id == tenant)).one_or_none()
    if row is None:
        raise NotFound(f"no webhook event {event_id} for tenant {tenant}")
    sent = session.scalars(select(Delivery).where(Delivery.event_id == key)
                           .order_by(Delivery.created_at))
    return {**summary(row), "endpoint_id": str(row.endpoint_id),
            "headers": redact_headers(row.headers), "payload": parse_body(row.body, row.headers),
            "deliveries": [sending.view(d) for d in sent]}
