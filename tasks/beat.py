"""Beat's scheduler: redbeat's, made to ride out a Redis outage (issue 9, item 5).

celery-redbeat 2.x lets every Redis error end beat: a ConnectionError while it
extends its lock, LockNotOwnedError after a FLUSHALL (the lock is gone), and a
ConnectionError at start-up when Redis is not up yet. With beat gone nothing
sweeps pending webhook events, due retries or due deliveries until a human
restarts it. This subclass keeps beat alive instead:

- Redis unreachable: log once, send nothing, look again every second.
- The lock lost (FLUSHALL, a Redis restart without persistence, or a standby
  that took over while this beat was cut off): take it again if it is free,
  else wait as a standby. Only the lock holder sends anything.
- On every (re)acquisition put the static schedule back into Redis
  (``setup_schedule`` keeps the ``last_run_at`` of entries that survived, so a
  flush makes every entry due at once rather than never).

The lock is taken with a plain ``SET NX`` each standby tick instead of redbeat's
blocking ``beat_init`` handler, so a standby never blocks on a dead Redis; its
timeout (``HUB_BEAT_LOCK_TIMEOUT``, renewed every tick) is the failover time
after the active beat is killed.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.exceptions import OperationalError
from redbeat.schedulers import RedBeatScheduler, get_redis

log = logging.getLogger("celery.beat")

#: What a Redis (or broker) outage raises inside a tick.
OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
          redis.exceptions.BusyLoadingError, OperationalError, OSError)
#: Seconds between two looks at Redis (or at a lock held by another beat).
RETRY_INTERVAL = 1.0


class HubBeatScheduler(RedBeatScheduler):
    """redbeat's scheduler that reconnects and re-acquires its lock on its own."""

    lock: Any = None
    lock_key: str | None = None

    def __init__(self, app: Any, **kwargs: Any) -> None:
        self._installed = False
        self._state = "starting"
        super().__init__(app, **kwargs)
        # redbeat's beat_init handler takes the lock blocking and, when Redis is down,
        # leaves beat without one (it then dies on its first tick): with lock_key None
        # that handler steps aside and tick() takes the lock itself.
        self.hub_lock_key = str(self.lock_key)
        self.lock_key = None

    # --- the schedule in Redis -----------------------------------------------------

    def setup_schedule(self) -> None:
        try:
            super().setup_schedule()
        except OUTAGE as exc:
            self._report("redis-down", "beat: Redis unreachable at start-up (%s); "
                         "waiting for it", exc)
            return
        self._installed = True

    # --- the lock --------------------------------------------------------------------

    def _hold_lock(self) -> bool:
        """Renew the lock, or try to take it; True when this beat may send."""
        if self.lock is not None:
            try:
                self.lock.extend(self.lock_timeout, replace_ttl=True)
                return True
            except redis.exceptions.LockError:
                self.lock = None
                self._report("lost", "beat: lost the lock %s (Redis flushed or restarted, "
                             "or a standby took over); taking it back when free",
                             self.hub_lock_key)
        lock = get_redis(self.app).lock(self.hub_lock_key, timeout=self.lock_timeout,
                                        thread_local=False)
        if not lock.acquire(blocking=False):
            self._report("standby", "beat: standing by, %s is held by another beat",
                         self.hub_lock_key)
            return False
        self.lock = lock
        self._installed = False  # whatever took our lock away may have taken the schedule
        self._report("active", "beat: acquired the lock %s", self.hub_lock_key)
        return True

    # --- the loop --------------------------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if not self._hold_lock():
                return RETRY_INTERVAL
            if not self._installed:
                self.setup_schedule()
                if not self._installed:
                    return RETRY_INTERVAL
            interval: float = super().tick(*args, **kwargs)
        except OUTAGE as exc:
            self._report("redis-down", "beat: Redis unreachable (%s); sending nothing, "
                         "retrying every %.0fs", exc, RETRY_INTERVAL)
            return RETRY_INTERVAL
        self._report("active", "beat: sending again")
        return interval

    def close(self) -> None:
        try:
            super().close()
        except OUTAGE as exc:
            log.warning("beat: could not release the lock (%s); it expires in %ss",
                        exc, self.lock_timeout)

    @property
    def info(self) -> str:
        return (f"{super().info}\n       . lock -> `{self.hub_lock_key}` "
                f"({self.lock_timeout}s, the failover time)")

    def _report(self, state: str, message: str, *args: Any) -> None:
        """Log a change of state once (not once a second while it lasts)."""
        if state == self._state:
            return
        previous, self._state = self._state, state
        level = logging.INFO if state == "active" and previous == "starting" else \
            logging.WARNING
        log.log(level, message, *args)
