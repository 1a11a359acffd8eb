"""The event bus (DESIGN §6): JSON events on Redis pub/sub channels ``integration.<type>``,
and the same events appended to one Redis Stream for consumers that must not miss any.

Pub/sub reaches only the listeners connected at that moment; the stream keeps the
last ``HUB_EVENT_STREAM_MAXLEN`` events (trimmed with ``MAXLEN ~``), so a consumer
group can read, acknowledge and, after a restart, catch up on what it missed. One
stream for every type: a consumer filters on the entry's ``type`` field, and the
order between families (request.failed, then dead_letter.added) is kept.

Publishing fails open: an event is a notification, not the record of the work
(that is in PostgreSQL), so Redis being slow or down is logged and counted, never
raised into the work that emitted it. Each publish is one round trip (the
PUBLISHes and the XADD in one non-transactional pipeline) on a client with short
timeouts; after a failure the bus drops events for :data:`SUSPEND_AFTER_FAILURE`
seconds instead of paying a connect timeout on every one of them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from hub.platform import metrics

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset({
    "service.registered", "request.sent", "request.completed", "request.failed",
    "webhook.received", "rate_limit.exceeded", "cache.hit", "cache.miss",
    "health.degraded", "health.recovered", "dead_letter.added", "subscription.disabled",
    "oauth.connected", "oauth.failed", "budget.exceeded", "supervisor.alert",
})

#: Seconds events are dropped (counted) after Redis failed to take one.
SUSPEND_AFTER_FAILURE = 2.0


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


def stream_fields(event: dict[str, Any], message: str) -> dict[str, str]:
    """The fields of one stream entry: ``type`` and ``tenant`` for cheap filtering, and
    ``event``, the same JSON document the channels carry."""
    return {"type": event["type"], "tenant": event["tenant"] or "", "event": message}


class EventBus:
    """Publishes events to pub/sub and to the stream ``stream`` (capped near ``maxlen``).

    ``client`` should have short socket timeouts (:meth:`hub.platform.services.Services.events`
    builds one): a hung Redis must not hold the work that emits an event.
    """

    def __init__(self, client: redis.Redis, *, stream: str, maxlen: int) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self._suspended_until = 0.0
        self._lock = threading.Lock()

    def publish(self, event_type: str, tenant: str | None, data: dict[str, Any], *,
                extra_channels: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Publish one event on ``integration.<type>`` (and ``extra_channels``) and append
        it to the stream, in one round trip.

        ``data`` must already be free of secrets. Returns the event, or None when it
        was dropped (Redis unavailable or just failed: logged and counted, never raised).
        """
        event = make_event(event_type, tenant, data)
        return event if self.send([(event, extra_channels)]) else None

    def send(self, items: list[tuple[dict[str, Any], tuple[str, ...]]], *,
             forget: str | None = None) -> bool:
        """Publish events already made (:func:`make_event`), each with its extra
        channels, all in one round trip, and delete the key ``forget`` (of the bus's
        Redis) in it. False when that round trip was dropped (Redis unavailable or
        just failed: logged and counted, never raised)."""
        if not items and forget is None:
            return True
        if time.monotonic() < self._suspended_until:
            for event, _extra in items:
                metrics.record_event_dropped(event["type"])
            return False
        try:
            pipe = self.client.pipeline(transaction=False)
            for event, extra_channels in items:
                message = json.dumps(event, default=str)
                for channel in (channel_for(event["type"]), *extra_channels):
                    pipe.publish(channel, message)
                pipe.xadd(self.stream, stream_fields(event, message),  # type: ignore[arg-type]
                          maxlen=self.maxlen, approximate=True)
            if forget is not None:
                pipe.delete(forget)
            pipe.execute()
        except (redis.RedisError, OSError, TypeError, ValueError):
            self._suspend()
            for event, _extra in items:
                metrics.record_event_dropped(event["type"])
            log.warning("%d event(s) not published", len(items), exc_info=True)
            return False
        return True

    def _suspend(self) -> None:
        with self._lock:
            self._suspended_until = time.monotonic() + SUSPEND_AFTER_FAILURE

    def close(self) -> None:
        self.client.close()


def publish(bus: EventBus, event_type: str, tenant: str | None, data: dict[str, Any], *,
            extra_channels: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """``bus.publish(...)``: see :meth:`EventBus.publish`. Never raises."""
    return bus.publish(event_type, tenant, data, extra_channels=extra_channels)


class Batch:
    """Events made now and published later, all in one Redis round trip.

    A unit of work that emits several events (an outbound call: ``request.sent``,
    then ``request.completed``) collects them with :meth:`add` and calls
    :meth:`flush` once at its end. Each event keeps the ``occurred_at`` of the
    moment it was added; subscribers receive them in order, when the work ends.
    Fails open like :func:`publish`.
    """

    def __init__(self) -> None:
        self._events: list[tuple[dict[str, Any], tuple[str, ...]]] = []

    def add(self, event_type: str, tenant: str | None, data: dict[str, Any], *,
            extra_channels: tuple[str, ...] = ()) -> dict[str, Any]:
        """Make the event now (``data`` free of secrets); return it."""
        event = make_event(event_type, tenant, data)
        self._events.append((event, extra_channels))
        return event

    def update_data(self, **fields: Any) -> None:
        """Set ``fields`` in the data of every event collected so far (e.g. the final
        attempt number, known once the attempt is audited)."""
        for event, _extra in self._events:
            event["data"].update(fields)

    def flush(self, bus: EventBus, *, forget: str | None = None) -> bool:
        """Publish every collected event through ``bus`` in one round trip; False when
        it was dropped (never raised). ``forget``: a key to delete in that round trip
        (a call's receive counter, once its run has ended: one round trip less per
        call)."""
        items, self._events = self._events, []
        return bus.send(items, forget=forget)
