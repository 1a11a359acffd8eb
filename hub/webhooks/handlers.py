"""Handlers: what the hub itself does with an inbound event, by source and event type.

A handler is ``handler(event, ctx)``; it reads the parsed event and may name
cached answers to invalidate through ``ctx`` (processing drops them from both
cache layers, :func:`hub.calls.cache.invalidate`, just before its transaction
commits). Handlers run inside the event's processing transaction: an exception
fails the event, which is retried with backoff. They must be idempotent, since a
retried or replayed event runs them again::

    @registry.register("payments", "transaction_updated")
    def invalidate_transaction(event, ctx):
        ctx.invalidate_cache("payments", "get_transaction_status",
                             params={"transaction_id": event.payload["transaction_id"]})

Patterns are ``fnmatch``-style and case-sensitive (``stripe``, ``*``, ``invoice.*``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from hub.platform.inbound import InboundEvent


@dataclass(frozen=True)
class CacheInvalidation:
    """Cached answers of one integration of the event's tenant: all of them, one
    operation's (a prefix), or exactly one call's (``params``)."""

    integration: str
    operation: str | None = None
    params: dict[str, Any] | None = None


@dataclass
class HandlerContext:
    """What a handler may ask the processing step to do."""

    tenant: str
    invalidations: list[CacheInvalidation] = field(default_factory=list)

    def invalidate_cache(self, integration: str, operation: str | None = None, *,
                         params: dict[str, Any] | None = None) -> None:
        """Drop this tenant's cached answers of ``integration`` (a name or id),
        narrowed to ``operation`` and to the call with exactly ``params``."""
        wanted = CacheInvalidation(integration, operation, params)
        if wanted not in self.invalidations:
            self.invalidations.append(wanted)


Handler = Callable[[InboundEvent, HandlerContext], None]


class HandlerRegistry:
    """Handlers keyed by (source pattern, event-type pattern), run in registration order."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, str, Handler]] = []

    def register(self, source: str, event_type: str = "*") -> Callable[[Handler], Handler]:
        """Decorator registering a handler for matching sources and event types."""

        def decorate(handler: Handler) -> Handler:
            self._entries.append((source, event_type, handler))
            return handler

        return decorate

    def unregister(self, handler: Handler) -> None:
        """Remove every registration of ``handler`` (tests, plug-in reloads)."""
        self._entries = [e for e in self._entries if e[2] is not handler]

    def handlers_for(self, source: str, event_type: str) -> list[Handler]:
        """The handlers whose patterns match, in registration order."""
        return [h for s, t, h in self._entries
                if fnmatchcase(source, s) and fnmatchcase(event_type, t)]


#: The hub's built-in handlers; processing uses this registry unless given another.
registry = HandlerRegistry()


@registry.register("*", "transaction_updated")
@registry.register("*", "transaction.updated")
def invalidate_transaction_status(event: InboundEvent, ctx: HandlerContext) -> None:
    """Seed 003: a transaction changed, so its cached status is stale.

    The integration is the one named like the event's source (an endpoint for
    source ``payments`` invalidates the tenant's ``payments`` integration).
    """
    payload = event.payload if isinstance(event.payload, dict) else {}
    data = payload.get("data")
    transaction_id = (data if isinstance(data, dict) else payload).get("transaction_id")
    if transaction_id:
        ctx.invalidate_cache(event.source, "get_transaction_status",
                             params={"transaction_id": transaction_id})
