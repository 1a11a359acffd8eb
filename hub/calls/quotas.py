"""Quotas in Redis, shared by every worker on every machine.

Fixed windows (minute, hour, day) counted by one Lua script, so the check and
the increment are one atomic step: no read-then-write race between workers,
and a call refused by one window consumes none of the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from hub.calls.retry import parse_retry_after

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


# --- Quotas learned from the provider ------------------------------------------------
#
# When a provider says its quota is spent (429 + Retry-After, or X-RateLimit-Remaining: 0
# with a reset time), every worker's calls to that integration wait until the reset,
# instead of each discovering the 429 on its own.

#: A provider's reset time is believed up to this far ahead (a bogus header must not
#: stop an integration for weeks).
MAX_HOLD_SECONDS = 86400.0
#: Epoch timestamps are told apart from delta-seconds by size (RFC 9110 §10.2.3 uses
#: deltas; GitHub's X-RateLimit-Reset is an epoch).
_EPOCH_THRESHOLD = 1_000_000_000

# KEYS[1]: hold key. ARGV[1]: hold in ms. Extends, never shortens, an existing hold.
_HOLD_SCRIPT = """
local want = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < want then
  redis.call('SET', KEYS[1], '1', 'PX', want)
  return 1
end
return 0
"""

_REMAINING = ("x-ratelimit-remaining", "x-rate-limit-remaining", "ratelimit-remaining")
_RESET = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset")
_RESET_AFTER = ("x-ratelimit-reset-after",)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def _reset_time(value: float, now: float) -> float:
    if value > _EPOCH_THRESHOLD * 1000:  # epoch milliseconds
        return value / 1000.0
    if value > _EPOCH_THRESHOLD:
        return value
    return now + value


def _retry_after_until(value: str | None, now: float) -> float | None:
    """The epoch time a ``Retry-After`` value points at (parsed by hub.calls.retry)."""
    seconds = parse_retry_after(value, datetime.fromtimestamp(now, UTC))
    return None if seconds is None else now + seconds


def _structured_ratelimit(value: str | None, now: float) -> float | None:
    # draft-ietf-httpapi-ratelimit-headers (structured): RateLimit: "policy";r=0;t=30
    if not value:
        return None
    for item in value.split(","):
        params = dict(p.strip().split("=", 1) for p in item.split(";")[1:] if "=" in p)
        remaining, reset = _number(params.get("r")), _number(params.get("t"))
        if remaining is not None and remaining <= 0 and reset is not None:
            return now + reset
    return None


def quota_exhausted_until(headers: Mapping[str, str], now: float,
                          status_code: int | None = None) -> float | None:
    """When the provider says its quota is spent, the epoch time it resets; else None.

    Reads (case-insensitively): ``Retry-After`` on a 429; ``X-RateLimit-Remaining: 0``
    (also ``X-Rate-Limit-*`` and the draft's ``RateLimit-Remaining``) with
    ``X-RateLimit-Reset`` (epoch or delta seconds) or ``X-RateLimit-Reset-After``;
    the IETF draft's structured ``RateLimit: ...;r=0;t=N``. The answer is capped
    at :data:`MAX_HOLD_SECONDS` from ``now``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    until = _retry_after_until(lower.get("retry-after"), now) if status_code == 429 \
        else None
    remaining = next((_number(lower[h]) for h in _REMAINING if h in lower), None)
    if until is None and remaining is not None and remaining <= 0:
        reset_after = next((_number(lower[h]) for h in _RESET_AFTER if h in lower), None)
        reset = next((_number(lower[h]) for h in _RESET if h in lower), None)
        if reset_after is not None:
            until = now + reset_after
        elif reset is not None:
            until = _reset_time(reset, now)
    if until is None:
        until = _structured_ratelimit(lower.get("ratelimit"), now)
    if until is None:
        return None
    return min(max(until, now), now + MAX_HOLD_SECONDS)


class ProviderHold:
    """A shared "do not call until" per scope (e.g. ``tenant:integration``)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script: Any = client.register_script(_HOLD_SCRIPT)

    def hold(self, scope: str, until: float, now: float | None = None) -> float:
        """Hold every worker's calls for ``scope`` until the epoch time ``until``
        (extending, never shortening, a current hold). Returns the hold in seconds.
        Fails open (logs, holds nothing) when Redis is unavailable."""
        seconds = min(until - (time.time() if now is None else now), MAX_HOLD_SECONDS)
        if seconds <= 0:
            return 0.0
        try:
            self._script(keys=[self._prefix + scope], args=[max(int(seconds * 1000), 1)])
        except (redis.RedisError, OSError):
            log.warning("quota store unavailable; not holding %s", scope, exc_info=True)
        return seconds

    def held_for(self, scope: str) -> float:
        """Seconds left on the hold of ``scope`` (0.0: call away). Uses the key's TTL,
        so workers with skewed clocks agree. Fails open on Redis errors."""
        try:
            ttl = int(self._client.pttl(self._prefix + scope))
        except (redis.RedisError, OSError):
            log.warning("quota store unavailable; not checking hold of %s", scope,
                        exc_info=True)
            return 0.0
        return ttl / 1000.0 if ttl > 0 else 0.0

    def release(self, scope: str) -> None:
        """Lift the hold of ``scope`` (operators, tests)."""
        self._client.delete(self._prefix + scope)

    def learn(self, scope: str, status_code: int | None, headers: Mapping[str, str],
              now: float | None = None) -> float:
        """Hold ``scope`` if a response's headers say the quota is spent; returns the
        seconds held (0.0 when the response said nothing of the kind)."""
        now = time.time() if now is None else now
        until = quota_exhausted_until(headers, now, status_code)
        return self.hold(scope, until, now) if until is not None else 0.0
