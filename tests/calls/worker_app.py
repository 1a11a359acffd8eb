"""The app run by the worker *processes* of the fault tests: the hub's app plus
test-only tasks that misbehave on purpose. Never imported by the pytest process
(a task here kills the process that runs it)."""

from __future__ import annotations

import os
import signal

from tasks.app import app
from tasks.base import HubTask

__all__ = ["app"]


@app.task(name="hub.test.suicide", bind=True, base=HubTask)
def suicide(self, marker: str) -> str:  # type: ignore[no-untyped-def]
    """Kill the pool process running it, every time it is received (a poison message)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return marker  # never reached


@app.task(name="hub.test.hold", bind=True, base=HubTask)
def hold(self, key: str, seconds: float) -> str:  # type: ignore[no-untyped-def]
    """Note each start (``<unix time> <worker>``) in the Redis list ``key``, then hold."""
    import time

    from tasks.app import services

    services().redis.rpush(key, f"{time.time()} {self.request.hostname}")
    time.sleep(seconds)
    return key
