"""Telling every worker that an integration changed (its in-memory copies are stale).

Workers keep resolved integrations in memory for a few seconds
(:mod:`hub.calls.integrations`). Any process that changes an ``integrations``
row through the ORM (the ``hub`` command, an OAuth2 refresh storing a rotated
token, tests) increments a per-tenant generation counter in Redis once its
transaction commits; a worker compares the counter with the one its copy was
loaded under before every call, so a change (a disable, new credentials, a new
base URL) applies to the very next call everywhere. The counter is a hint, not
the record: when Redis is unreachable the copies simply expire on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.config import Settings
from hub.platform.models import Integration

log = logging.getLogger(__name__)

_CHANGED = "hub_changed_integration_tenants"


def generation_key(settings: Settings, tenant: str) -> str:
    """The Redis counter of ``tenant``'s integration changes."""
    return settings.redis_key("integrations", "generation", tenant)


def watch_integrations(factory: sessionmaker[Session], client: Callable[[], redis.Redis],
                       settings: Settings) -> None:
    """Bump the generation of every tenant whose integrations a session of ``factory``
    changed, after that session commits (nothing on a rollback)."""

    def after_flush(session: Session, _context: Any) -> None:
        changed = {obj.tenant_id for obj in (*session.new, *session.dirty, *session.deleted)
                   if isinstance(obj, Integration)}
        if changed:
            session.info.setdefault(_CHANGED, set()).update(changed)

    def after_commit(session: Session) -> None:
        tenants = session.info.pop(_CHANGED, None)
        if tenants:
            bump(client(), settings, tenants)

    def after_rollback(session: Session) -> None:
        session.info.pop(_CHANGED, None)

    event.listen(factory, "after_flush", after_flush)
    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_rollback", after_rollback)


def bump(client: redis.Redis, settings: Settings, tenants: set[str]) -> None:
    """Increment the generation of ``tenants`` (fails open: logged, never raised)."""
    try:
        pipe = client.pipeline(transaction=False)
        for tenant in sorted(tenants):
            pipe.incr(generation_key(settings, tenant))
        pipe.execute()
    except (redis.RedisError, OSError):
        log.warning("integration change of %s not announced; workers see it within "
                    "their cache time", sorted(tenants), exc_info=True)
