"""When each maintenance task last succeeded: beat's pulse, readable by any process.

Beat sends the ``hub.maintenance.*`` tasks on a schedule (the shortest every 5 s)
and a worker runs them. Each success stamps its time in one Redis hash; the web
app's ``/metrics`` reads the hash at each scrape as
``hub_maintenance_last_success_timestamp_seconds{task}`` (hub.ops.statemetrics):
the same answer from every replica, kept across worker restarts. When beat stops,
or nothing consumes the maintenance queue, the stamps stop moving, and
``time() - max(...)`` grows: the alert rule HubBeatNotRunning
(deploy/prometheus/hub-alerts.yml) watches that. Nothing of Celery's own shows it:
beat serves no metrics, and a worker's task counters do not tell who sent the task.
"""

from __future__ import annotations

import logging
import time

import redis

from hub.platform.services import Services

log = logging.getLogger(__name__)

#: The task names beat schedules (celeryconfig.beat_schedule) start with this.
TASK_PREFIX = "hub.maintenance."


def _key(services: Services) -> str:
    return services.settings.redis_key("maintenance", "last_success")


def record_success(services: Services, task: str, at: float | None = None) -> None:
    """Stamp ``task``'s success at ``at`` (default now, Unix seconds). Fails open: a
    Redis error is logged, never raised (the task itself succeeded)."""
    try:
        services.redis.hset(_key(services), task, repr(time.time() if at is None else at))
    except (redis.RedisError, OSError) as exc:
        log.warning("maintenance run of %s not stamped: %s", task, exc)


def last_successes(services: Services) -> dict[str, float]:
    """Task name -> Unix time of its last success, for every task stamped so far.
    Raises redis.RedisError when Redis does not answer."""
    stamps: dict[str, str] = services.redis.hgetall(_key(services))  # type: ignore[assignment]
    return {task: float(at) for task, at in stamps.items()}
