"""The event bus: JSON events on Redis pub/sub channels ``integration.<type>`` (DESIGN §6).

Publishing fails open: an event is a notification, not the record of the work
(that is in PostgreSQL), so a Redis hiccup is logged and counted, never raised
into the work that emitted it.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset({
    "service.registered", "request.sent", "request.completed", "request.failed",
    "webhook.received", "rate_limit.exceeded", "cache.hit", "cache.miss",
    "health.degraded", "health.recovered", "dead_letter.added", "subscription.disabled",
})


class Publisher(Protocol):
    def publish(self, channel: str, message: str) -> Any: ...


def make_event(event_type: str, tenant: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """The public event document ``{"id", "type", "tenant", "occurred_at", "data"}``."""
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "tenant": tenant,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }


def channel_for(event_type: str) -> str:
    return f"integration.{event_type}"


def publish(client: Publisher, event_type: str, tenant: str | None, data: dict[str, Any],
            *, extra_channels: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Publish one event on ``integration.<type>`` (and ``extra_channels``).

    ``data`` must already be free of secrets. Returns the event, or None when
    Redis could not take it (logged, never raised).
    """
    event = make_event(event_type, tenant, data)
    try:
        message = json.dumps(event, default=str)
        for channel in (channel_for(event_type), *extra_channels):
            client.publish(channel, message)
    except (redis.RedisError, OSError, TypeError, ValueError):
        log.warning("event %s not published", event_type, exc_info=True)
        return None
    return event
