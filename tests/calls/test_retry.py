"""The retry policy: full-jitter backoff, Retry-After, what is retryable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hub.calls.retry import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)
from hub.platform.errors import ValidationError


def test_backoff_ceiling_doubles_up_to_the_cap():
    policy = RetryPolicy(base=1, cap=30, max_attempts=10)
    assert [policy.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 5)] == [1, 2, 4, 8]
    assert [policy.backoff(n, rng=lambda: 0.5) for n in range(1, 5)] == [0.5, 1, 2, 4]
    assert policy.backoff(200, rng=lambda: 1.0) == 30  # no overflow


def test_full_jitter_spreads_waits_over_the_whole_range():
    policy = RetryPolicy(base=1, cap=100, max_attempts=10)
    waits = [policy.backoff(5) for _ in range(2000)]
    assert min(waits) >= 0 and max(waits) <= 16
    assert min(waits) < 1.6 and max(waits) > 14.4  # not clustered around the ceiling


def test_retry_after_is_a_floor():
    policy = RetryPolicy(base=1, cap=30)
    assert policy.next_delay(1, retry_after=12, rng=lambda: 1.0) == 12
    assert policy.next_delay(5, retry_after=2, rng=lambda: 1.0) == 16
    assert policy.next_delay(1, retry_after=10 ** 9, rng=lambda: 0) == MAX_RETRY_AFTER


def test_parse_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True),
                             now=now) == 90
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0


@pytest.mark.parametrize("status,retryable", [(429, True), (500, True), (502, True),
                                              (503, True), (504, True), (400, False),
                                              (401, False), (403, False), (404, False),
                                              (409, False), (422, False), (200, False)])
def test_retryable_statuses(status, retryable):
    assert is_retryable_status(status) is retryable


def test_policy_from_integration_config():
    policy = RetryPolicy.from_config({"retry": {"base": 2, "cap": 60, "max_attempts": 7}})
    assert (policy.base, policy.cap, policy.max_attempts) == (2, 60, 7)
    assert RetryPolicy.from_config({}) == RetryPolicy()
    assert policy.exhausted(7) and not policy.exhausted(6)
    for bad in ({"base": 0}, {"base": 5, "cap": 1}, {"max_attempts": 0}, {"base": "x"}):
        with pytest.raises(ValidationError):
            RetryPolicy.from_config({"retry": bad})
