"""Failover: which integration serves a call when the one it names cannot, and why.

Seed 001: Google geocoding primary, Yandex fallback. An integration's fallbacks
are its ``fallback_integration_id`` and, in turn, that one's (``hub integrations
add --fallback``; cycles and links to another tenant are ignored). They are
tried by ``priority``, highest first (ties keep the chain's order), active ones
only, and a fallback whose beat health check says ``degraded`` or ``down`` only
after the healthy ones.

A call moves on when the integration it tried:

- timed out, answered 5xx or could not be reached (``timeout``, ``server_error``,
  ``provider_error``);
- is rate limited: its own quota spent, a 429, Google's OVER_QUERY_LIMIT
  (``rate_limited``);
- has an open circuit (``circuit_open``);
- is marked ``degraded`` or ``down`` by beat's health checks while a healthy fallback exists
  (reason: that status): the call skips it without sending anything.

Any other failure (a 4xx, AUTH_ERROR, VALIDATION_ERROR) is the provider's answer
to this call and ends it: another provider would be asked the same wrong thing.
Nothing here runs on a call that its first integration serves (the chain is read
only when a failover is needed), so the hot path costs nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hub.calls import integrations
from hub.platform.errors import (
    CircuitOpen,
    HubError,
    NotFound,
    RateLimited,
    RetryableError,
    TimeoutError_,
)
from hub.platform.models import Integration

#: Longest chain followed (a misconfigured loop ends here anyway).
MAX_CHAIN = 8
DEGRADED = "degraded"
#: Health statuses beat's checks give a failing integration: an error answer, or none.
UNHEALTHY = frozenset({DEGRADED, "down"})


def unhealthy(row: Integration) -> bool:
    """True when beat's last health check found ``row`` failing (degraded or down)."""
    return row.health_status in UNHEALTHY


@dataclass(frozen=True)
class Skip:
    """One integration that did not serve the call, and why."""

    integration_id: uuid.UUID
    integration: str
    reason: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"integration": self.integration, "reason": self.reason, "error": self.error}

    def __str__(self) -> str:
        return f"{self.integration}: {self.reason}" + (f" ({self.error})" if self.error else "")


def reason_for(exc: HubError) -> str | None:
    """The failover reason ``exc`` gives, or None when it must not fail over."""
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, TimeoutError_):
        return "timeout"
    if isinstance(exc, RetryableError):
        status = exc.details.get("status_code")
        return "server_error" if isinstance(status, int) and status >= 500 else "provider_error"
    return None


def fallbacks(session: Session, row: Integration) -> list[Integration]:
    """``row``'s fallback chain, ordered for trying: active ones, healthy before
    degraded, then by priority (highest first), then chain order."""
    chain: list[Integration] = []
    seen = {row.id}
    link = row.fallback_integration_id
    while link is not None and link not in seen and len(chain) < MAX_CHAIN:
        seen.add(link)
        try:
            nxt = integrations.get_by_id(session, row.tenant_id, link)
        except NotFound:  # deleted, or another tenant's id: the chain ends
            break
        chain.append(nxt)
        link = nxt.fallback_integration_id
    active = [r for r in chain if r.status == "active"]
    order = {r.id: i for i, r in enumerate(active)}
    return sorted(active, key=lambda r: (unhealthy(r), -(r.priority or 0),
                                         order[r.id]))


class Candidates:
    """The integrations left to try for one call, read once, on first need."""

    def __init__(self, sessions: sessionmaker[Session], first: Integration,
                 supports: Callable[[Integration], bool]) -> None:
        self._sessions, self._first, self._supports = sessions, first, supports
        self._left: list[Integration] | None = None

    def _load(self) -> list[Integration]:
        if self._left is None:
            with self._sessions() as session:
                found = fallbacks(session, self._first)
                for row in found:
                    session.expunge(row)
            self._left = [row for row in found if self._supports(row)]
        return self._left

    def next(self, tried: Iterable[uuid.UUID]) -> Integration | None:
        """The next integration to try, or None when none is left."""
        done = set(tried)
        return next((row for row in self._load() if row.id not in done), None)

    def healthy_after(self, tried: Iterable[uuid.UUID]) -> Integration | None:
        """The next integration to try if it is not degraded (so a degraded one is
        skipped only for a healthy one)."""
        row = self.next(tried)
        return row if row is not None and not unhealthy(row) else None
