"""The outbound retry policy (DESIGN §4, seed 003): which failures are retried and when.

Network errors, timeouts, 5xx and 429 are retried; other 4xx are final. Waits
grow exponentially with *full jitter* (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015): ``sleep = random(0, min(cap, base * 2 ** (n - 1)))``,
which spreads a burst of failing clients out instead of retrying them in lock
step. A provider's ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an
HTTP-date) is a floor: we never come back sooner than it asked.

Pure functions only; the pipeline (``hub.calls``) decides what to do with a delay.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from hub.platform.errors import ValidationError

#: A provider asking for more than a day is treated as asking for a day.
MAX_RETRY_AFTER = 86400.0

DEFAULT_BASE = 1.0
DEFAULT_CAP = 600.0
DEFAULT_MAX_ATTEMPTS = 5


def is_retryable_status(status: int) -> bool:
    """True for 429 and every 5xx; every other status is final."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP-date).

    Returns None for a missing or unparseable value, 0 for a date in the past,
    and at most :data:`MAX_RETRY_AFTER`.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until_http_date(value, now)
    if seconds is None:
        return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _seconds_until_http_date(value: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters of one integration (``config["retry"]``)."""

    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RetryPolicy:
        """Read ``{"retry": {"base", "cap", "max_attempts"}}`` from an integration's config.

        Missing keys take the defaults. Raises ValidationError for a non-positive or
        non-numeric value, or a cap below the base.
        """
        raw = (config or {}).get("retry") or {}
        if not isinstance(raw, Mapping):
            raise ValidationError("config.retry must be an object")
        try:
            policy = cls(base=float(raw.get("base", DEFAULT_BASE)),
                         cap=float(raw.get("cap", DEFAULT_CAP)),
                         max_attempts=int(raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)))
        except (TypeError, ValueError):
            raise ValidationError("config.retry values must be numbers") from None
        if policy.base <= 0 or policy.cap < policy.base or policy.max_attempts < 1:
            raise ValidationError("config.retry needs base > 0, cap >= base, max_attempts >= 1")
        return policy

    def ceiling(self, attempt: int) -> float:
        """The largest backoff after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 62)  # 2**62 already dwarfs any cap
        return min(self.cap, self.base * (2 ** exponent))

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter wait after failed attempt ``attempt``: uniform in [0, ceiling]."""
        return rng() * self.ceiling(attempt)

    def next_delay(self, attempt: int, retry_after: float | None = None,
                   rng: Callable[[], float] = random.random) -> float:
        """Seconds before attempt ``attempt + 1``; never sooner than ``retry_after``."""
        delay = self.backoff(attempt, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    def exhausted(self, attempt: int) -> bool:
        """True when attempt number ``attempt`` was the last one allowed."""
        return attempt >= self.max_attempts
