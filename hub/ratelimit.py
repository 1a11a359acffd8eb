"""Quotas in Redis, shared by every worker on every machine.

Fixed windows (minute, hour, day) counted by one Lua script, so the check and
the increment are one atomic step: no read-then-write race between workers,
and a call refused by one window consumes none of the others.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

WINDOWS = {"minute": 60, "hour": 3600, "day": 86400}

# KEYS: one counter key per window. ARGV: now, then (limit, window seconds) per key.
# Returns {0, retry_after_ms, index of the full window} when one is full, else {1, 0, 0}.
_HIT_SCRIPT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[2 * i + 1]) * 1000 end
    return {0, ttl, i}
  end
end
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]) * 1000) end
end
return {1, 0, 0}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until the fullest window frees up
    window: str | None = None


class QuotaLimiter:
    """Counts hits against per-window limits under one key namespace."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script: Any = client.register_script(_HIT_SCRIPT)

    def hit(self, scope: str, limits: dict[str, int | None]) -> Decision:
        """Count one hit for ``scope`` (e.g. ``tenant:integration``) if every window allows.

        ``limits`` maps window names of :data:`WINDOWS` to a limit (None or 0: no limit).
        Fails open when Redis is unavailable: a quota is bookkeeping that protects a
        provider, and refusing every call because the counter store is down would turn
        a Redis blip into an outage (warehouse's rate limiter makes the same choice).
        """
        active = [(w, n) for w, n in limits.items() if n]
        if not active:
            return Decision(True)
        now = time.time()
        keys = [f"{self._prefix}{scope}:{w}:{int(now // WINDOWS[w])}" for w, _ in active]
        argv: list[Any] = [now]
        for w, n in active:
            argv += [n, WINDOWS[w]]
        try:
            allowed, retry_ms, full = self._script(keys=keys, args=argv)
        except (redis.RedisError, OSError):
            log.warning("quota store unavailable; allowing %s (fail open)", scope, exc_info=True)
            return Decision(True)
        if allowed:
            return Decision(True)
        return Decision(False, retry_after=max(int(retry_ms), 1) / 1000.0,
                        window=active[int(full) - 1][0])

    def reset(self, scope: str) -> None:
        for key in self._client.scan_iter(f"{self._prefix}{scope}:*"):
            self._client.delete(key)
