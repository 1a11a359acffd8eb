"""Subscriptions: services that want inbound events passed on to them (DESIGN §5).

A subscription is a callback URL, event-type patterns and ``whsec_`` secrets.
The secret is generated here, returned to the caller exactly once, and stored
only encrypted as a JSON list (current first; the previous one is kept after a
rotation so deliveries carry both signatures until the receiver switched).

Patterns are ``fnmatch``-style over the qualified type ``<source>.<event_type>``
(``stripe.*``, ``*.invoice.paid``, ``github.push``); no pattern means every event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.calls.http import check_url
from hub.deliveries import standard_webhooks
from hub.platform.config import Settings
from hub.platform.errors import NotFound, ValidationError
from hub.platform.models import Delivery, Subscription
from hub.platform.scheduler import utcnow
from hub.platform.vault import Secret, Vault

MAX_SCHEDULE_WAIT = 7 * 24 * 3600.0


@dataclass(frozen=True)
class NewSubscription:
    """A created subscription and its secret, which is never shown again."""

    subscription: Subscription
    secret: Secret[str]


def _owner(sub: Subscription) -> str:
    return f"subscription {sub.tenant_id}/{sub.id}"


def _parse_id(subscription_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(subscription_id))
    except ValueError:
        raise NotFound(f"no subscription {subscription_id}") from None


def _check_schedule(schedule: Sequence[float] | None) -> list[float] | None:
    if schedule is None:
        return None
    waits = [float(w) for w in schedule]
    if not waits or any(w < 0 or w > MAX_SCHEDULE_WAIT for w in waits):
        raise ValidationError("a retry schedule is a non-empty list of waits "
                              f"between 0 and {int(MAX_SCHEDULE_WAIT)} seconds")
    return waits


def add(session: Session, vault: Vault, settings: Settings, *, tenant: str, url: str,
        event_types: Sequence[str] = (),
        retry_schedule: Sequence[float] | None = None) -> NewSubscription:
    """Create an active subscription with a fresh ``whsec_`` secret (flushed, not committed).

    Raises ValidationError for a missing tenant, a non-http(s) URL or a bad
    schedule, SSRFRefused when the URL resolves to a private address (unless
    settings allow private networks).
    """
    if not tenant:
        raise ValidationError("tenant is required")
    check_url(url, settings)
    secret = standard_webhooks.generate_secret()
    sub = Subscription(tenant_id=tenant, url=url, secret=vault.encrypt([secret]),
                       event_types=[p for p in event_types if p],
                       retry_schedule=_check_schedule(retry_schedule))
    session.add(sub)
    session.flush()
    return NewSubscription(sub, Secret(secret))


def get(session: Session, tenant: str, subscription_id: str | uuid.UUID, *,
        lock: bool = False) -> Subscription:
    """The tenant's subscription; NotFound for another tenant's or an unknown id."""
    query = select(Subscription).where(Subscription.id == _parse_id(subscription_id),
                                       Subscription.tenant_id == tenant)
    sub = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if sub is None:
        raise NotFound(f"no subscription {subscription_id} for tenant {tenant}")
    return sub


def list_for(session: Session, tenant: str, *, active: bool | None = None) -> list[Subscription]:
    """The tenant's subscriptions, oldest first."""
    query = select(Subscription).where(Subscription.tenant_id == tenant)
    if active is not None:
        query = query.where(Subscription.active.is_(active))
    return list(session.scalars(query.order_by(Subscription.created_at, Subscription.id)))


def matches(patterns: Sequence[str], qualified_type: str) -> bool:
    """True when ``qualified_type`` matches any pattern, or there are none."""
    return not patterns or any(fnmatchcase(qualified_type, p) for p in patterns)


def matching(session: Session, tenant: str, qualified_type: str) -> list[Subscription]:
    """The tenant's active subscriptions whose patterns match the event type."""
    return [s for s in list_for(session, tenant, active=True)
            if matches(s.event_types or [], qualified_type)]


def disable(session: Session, sub: Subscription, reason: str) -> None:
    """Stop deliveries to ``sub`` and cancel the ones waiting for a retry.

    Cancelled deliveries can be sent again with a replay once it is enabled.
    """
    sub.active = False
    sub.disabled_at = utcnow()
    sub.disabled_reason = reason
    session.execute(update(Delivery)
                    .where(Delivery.subscription_id == sub.id,
                           Delivery.status.in_(("pending", "failed")))
                    .values(status="cancelled", next_attempt_at=None))


def enable(sub: Subscription) -> None:
    """Resume deliveries to ``sub`` with a clean failure record."""
    sub.active = True
    sub.disabled_at = None
    sub.disabled_reason = None
    sub.consecutive_failures = 0
    sub.failing_since = None


def secrets_of(vault: Vault, sub: Subscription) -> Secret[list[str]]:
    """The subscription's secrets, current first. Raises VaultError if no key opens them."""
    return Secret(list(vault.decrypt(sub.secret, owner=_owner(sub))))


def rotate_secret(vault: Vault, sub: Subscription, *, keep_previous: bool = True) -> Secret[str]:
    """Give ``sub`` a new current secret and return it (shown once).

    With ``keep_previous`` the old current secret stays second, so deliveries
    are signed with both until the next rotation; older ones are dropped.
    """
    new = standard_webhooks.generate_secret()
    kept = secrets_of(vault, sub).reveal()[:1] if keep_previous else []
    sub.secret = vault.encrypt([new, *kept])
    return Secret(new)


def schedule_for(sub: Subscription, settings: Settings) -> tuple[float, ...]:
    """Delivery waits: the subscription's own, else its tenant's, else the default."""
    if sub.retry_schedule:
        return tuple(float(w) for w in sub.retry_schedule)
    return settings.delivery_schedule(sub.tenant_id)


def view(sub: Subscription) -> dict[str, Any]:
    """A JSON-able summary, without the secret."""
    return {
        "id": str(sub.id), "tenant": sub.tenant_id, "url": sub.url,
        "events": list(sub.event_types or []), "retry_schedule": sub.retry_schedule,
        "active": sub.active, "consecutive_failures": sub.consecutive_failures,
        "failing_since": sub.failing_since, "disabled_at": sub.disabled_at,
        "disabled_reason": sub.disabled_reason, "created_at": sub.created_at,
    }
