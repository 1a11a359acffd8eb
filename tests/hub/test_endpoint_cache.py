"""The intake's endpoint cache: expiry, and one lookup when many threads miss together."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hub.webhooks.intake import EndpointCache

DEADLINE = 10.0


class CountingCache(EndpointCache):
    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.gets = 0
        self._count = threading.Lock()

    def get(self, key):  # type: ignore[no-untyped-def]
        with self._count:
            self.gets += 1
        return super().get(key)


def test_threads_missing_one_key_together_share_one_load():
    cache = CountingCache()
    threads = 8
    loads = []

    def load():
        loads.append(1)
        # Hold the load until every thread has missed (7 others' first look, plus the
        # loading thread's two): without the per-key lock each of them would load too.
        deadline = time.monotonic() + DEADLINE
        while cache.gets < threads + 1:
            assert time.monotonic() < deadline, "the other threads never looked"
            time.sleep(0.001)  # polling a counter with a deadline
        return "endpoint"

    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(lambda _: cache.get_or_load(("stripe", "tok"), load),
                            range(threads)))

    assert got == ["endpoint"] * threads
    assert len(loads) == 1


def test_a_missing_endpoint_is_not_cached_and_an_entry_expires():
    now = [0.0]
    cache = EndpointCache(ttl=5, clock=lambda: now[0])
    answers = iter([None, "v1", "v2"])

    assert cache.get_or_load(("s", "t"), lambda: next(answers)) is None
    assert cache.get_or_load(("s", "t"), lambda: next(answers)) == "v1"
    now[0] = 4.9
    assert cache.get_or_load(("s", "t"), lambda: next(answers)) == "v1"
    now[0] = 5.1
    assert cache.get_or_load(("s", "t"), lambda: next(answers)) == "v2"
