"""kombu's Redis transport, with one client object per channel instead of one per use.

kombu's Redis channel builds a new ``redis.Redis`` object every time it needs one for
a plain command: twice per task message (recording it unacknowledged when received,
deleting that record when acknowledged). Building one is not cheap in redis-py 5+
(its table of response callbacks is copied anew): 4 % of a worker's CPU while it
drains calls (docs/benchmarks.md, issue 10 round 6). The object is only a handle on
the channel's connection pool, and redis-py's clients are thread-safe (each command
takes a connection from the pool, a pipeline is built per use), so the channel here
keeps one and hands it out again; a new one when kombu replaced the pool (after a
connection error).

``celeryconfig.broker_settings`` names this transport for ``redis://`` brokers; other
schemes (``rediss://``, sentinel, RabbitMQ) keep kombu's own. Lives at the top level,
like celeryresults.py, because every process that loads celeryconfig uses it, clients
included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel
