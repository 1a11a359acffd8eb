"""Celery guardrails of DESIGN §4 that need shared state: the poison-message counter.

With ``acks_late`` + ``task_reject_on_worker_lost`` a message whose task kills
its worker (segfault, OOM, ``os._exit``) is redelivered - forever, unless
someone counts. Every run of a hub task increments a Redis counter keyed by its
task id *before* the body starts (a message known to have nothing to do is dropped
uncounted: ``tasks.base.HubTask.nothing_to_do``), and clears it when the body ends
in any way Python sees (success, failure, retry). Only deaths, and runs whose retry
the broker refused (their message requeued, tasks.settle), leave it incremented, so
the counter is the number of consecutive receives that did not finish; past
``settings.max_receives`` the message is dead-lettered instead of run again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from hub.platform import deadletters
from hub.platform.errors import DeadLettered
from hub.platform.services import Services

log = logging.getLogger(__name__)

#: A counter outlives any plausible redelivery loop, then expires on its own.
RECEIVE_TTL = 24 * 3600


def receive_key(services: Services, task_id: str) -> str:
    """The Redis key counting the receives of ``task_id`` (INCR it, then EXPIRE it
    after :data:`RECEIVE_TTL`, to count a receive in a pipeline of one's own)."""
    return str(services.settings.redis_key("receives", task_id))


_key = receive_key


def count_receive(services: Services, task_id: str) -> int:
    """Count one receive of ``task_id`` and return the count (0 when Redis is down:
    fail open, a lost counter must not stop healthy work)."""
    try:
        pipe = services.redis.pipeline()
        pipe.incr(_key(services, task_id))
        pipe.expire(_key(services, task_id), RECEIVE_TTL)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError):
        log.warning("receive counter unavailable for %s (fail open)", task_id, exc_info=True)
        return 0
    return int(count)


def clear_receives(services: Services, task_id: str) -> None:
    """The run ended normally: forget its receives."""
    try:
        services.redis.delete(_key(services, task_id))
    except (redis.RedisError, OSError):
        log.warning("receive counter of %s not cleared", task_id, exc_info=True)


def admit(services: Services, *, task_name: str, task_id: str, kwargs: dict[str, Any],
          args: list[Any], receives: int | None = None) -> DeadLettered | None:
    """Count this receive of ``task_id`` (unless the caller counted it already:
    ``receives`` is then the count). None: run the body (then :func:`clear_receives`).
    Past ``settings.max_receives`` the message is dead-lettered as poison, its counter
    cleared, and the error to fail with returned."""
    if receives is None:
        receives = count_receive(services, task_id)
    if receives <= services.settings.max_receives:
        return None
    error = dead_letter_poison(services, task_name=task_name, task_id=task_id,
                               kwargs=kwargs, args=args, receives=receives)
    clear_receives(services, task_id)
    return error


def dead_letter_poison(services: Services, *, task_name: str, task_id: str,
                       kwargs: dict[str, Any], args: list[Any], receives: int) -> DeadLettered:
    """Record a poison message as a dead letter (origin ``poison``), announce it, and
    return the DEAD_LETTERED error the task fails with."""
    error = DeadLettered(
        f"task {task_name} did not finish {receives - 1} times (its worker killed, or its "
        f"retry refused by the broker); dead-lettered as poison",
        details={"task_id": task_id, "receives": receives - 1})
    deadletters.record_and_announce(
        services, origin="poison", task_name=task_name, task_id=task_id, kwargs=kwargs,
        args=args, tenant_id=kwargs.get("tenant"), integration=kwargs.get("integration"),
        error_code=error.code, error=error.message, attempts=receives - 1)
    return error
