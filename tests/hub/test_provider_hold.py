"""hub.calls.quotas: quotas learned from provider headers, held for every worker."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest
import redis

from hub.calls.quotas import MAX_HOLD_SECONDS, ProviderHold, quota_exhausted_until

NOW = 1_800_000_000.0


@pytest.mark.parametrize("status, headers, expected", [
    (429, {"Retry-After": "30"}, NOW + 30),
    (429, {"retry-after": formatdate(NOW + 120, usegmt=True)}, NOW + 120),
    (503, {"Retry-After": "30"}, None),  # unavailable, not a quota: the breaker's business
    (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 45))}, NOW + 45),
    (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "12"}, NOW + 12),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "7.5"}, NOW + 7.5),
    (200, {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(int(NOW + 9))}, NOW + 9),
    (200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "20"}, NOW + 20),
    (200, {"RateLimit": '"default";r=0;t=15', "RateLimit-Policy": '"default";q=100;w=60'},
     NOW + 15),
    (200, {"RateLimit": '"default";r=3;t=15'}, None),
    (200, {"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "12"}, None),
    (429, {}, None),
    (429, {"Retry-After": "soon"}, None),
    (429, {"Retry-After": "99999999"}, NOW + MAX_HOLD_SECONDS),
])
def test_quota_exhausted_until(status, headers, expected):
    assert quota_exhausted_until(headers, NOW, status) == expected


@pytest.fixture
def holds(services):
    return ProviderHold(services.redis, services.settings.redis_key("hold") + ":")


def test_hold_is_seen_by_another_client_and_expires(services, holds, tenant):
    scope = f"{tenant}:crm"
    # A second connection, as another worker on another machine would have.
    client = redis.Redis.from_url(services.settings.redis_url, decode_responses=True)
    other_worker = ProviderHold(client, services.settings.redis_key("hold") + ":")
    assert other_worker.held_for(scope) == 0.0
    held = holds.learn(scope, 429, {"Retry-After": "1"})
    assert held == pytest.approx(1.0, abs=0.05)
    assert 0.5 < other_worker.held_for(scope) <= 1.0
    assert 0.5 < other_worker.held_for(scope) <= 1.0
    assert holds.held_for(f"{tenant}:other") == 0.0
    deadline = time.monotonic() + 5
    while other_worker.held_for(scope) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other_worker.held_for(scope) == 0.0
    client.close()


def test_hold_extends_but_never_shortens(holds, tenant):
    scope = f"{tenant}:crm"
    now = time.time()
    holds.hold(scope, now + 60, now)
    holds.hold(scope, now + 5, now)
    assert holds.held_for(scope) > 50
    holds.hold(scope, now + 120, now)
    assert holds.held_for(scope) > 110
    holds.release(scope)
    assert holds.held_for(scope) == 0.0


def test_no_hold_when_headers_say_nothing(holds, tenant):
    assert holds.learn(f"{tenant}:crm", 200, {"X-RateLimit-Remaining": "10"}) == 0.0
    assert holds.held_for(f"{tenant}:crm") == 0.0


def test_concurrent_holds_keep_the_longest(holds, tenant):
    scope = f"{tenant}:crm"
    now = time.time()
    threads = [threading.Thread(target=holds.hold, args=(scope, now + s, now))
               for s in (10, 30, 20, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 25 < holds.held_for(scope) <= 30
