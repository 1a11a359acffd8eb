"""The bundle of outside systems a unit of work needs, passed explicitly.

Processes build one :class:`Services` (lazily, after fork) and hand it to core
functions; nothing in ``hub/`` reaches for a module-level client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import redis
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.changes import watch_integrations
from hub.platform.config import Settings
from hub.platform.db import (
    make_async_commit_engine,
    make_autocommit_engine,
    make_engine,
    make_session_factory,
)
from hub.platform.dispatch import Dispatcher
from hub.platform.events import EventBus
from hub.platform.statementbatch import BatchedStatements
from hub.platform.vault import Vault

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    dispatcher: Dispatcher
    #: Extra ``create_engine`` options, e.g. ``{"poolclass": NullPool}`` for a process
    #: that forks after using it (no pooled connection to inherit).
    engine_options: dict[str, object] = field(default_factory=dict)
    engine: Engine = field(init=False)

    _shared: dict[Hashable, Any] = field(init=False, default_factory=dict, repr=False)
    _shared_lock: threading.Lock = field(init=False, default_factory=threading.Lock,
                                         repr=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings, **self.engine_options)

    def shared(self, key: Hashable, build: Callable[[], T]) -> T:
        """The process-wide object under ``key``, built by ``build`` on first use.

        For objects every thread of a worker should share rather than rebuild per
        call (a circuit breaker per integration, a resolved integration): one per
        ``key`` per :class:`Services`, built once even when threads ask together.
        ``build`` must not call :meth:`shared` itself.
        """
        try:
            return self._shared[key]
        except KeyError:
            pass
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = build()
            return self._shared[key]

    def forget(self, key: Hashable) -> None:
        """Drop the shared object under ``key`` (rebuilt on next use)."""
        with self._shared_lock:
            self._shared.pop(key, None)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        factory = make_session_factory(self.engine)
        watch_integrations(factory, lambda: self.redis, self.settings)
        return factory

    @cached_property
    def async_engine(self) -> Engine:
        """Autocommit, asynchronously committed writes (audit rows, through
        :attr:`async_writes`); see :func:`hub.platform.db.make_async_commit_engine`."""
        return make_async_commit_engine(self.settings)

    @cached_property
    def autocommit_engine(self) -> Engine:
        """Autocommit, synchronously committed single statements (the ``sending``
        audit row, through :attr:`durable_writes`); see
        :func:`hub.platform.db.make_autocommit_engine`."""
        return make_autocommit_engine(self.settings)

    @cached_property
    def durable_writes(self) -> BatchedStatements:
        """Single statements committed synchronously, concurrent threads' together
        (the ``sending`` audit row); see :mod:`hub.platform.statementbatch`."""
        return BatchedStatements(self.autocommit_engine)

    @cached_property
    def async_writes(self) -> BatchedStatements:
        """Single statements committed asynchronously, concurrent threads' together
        (audit rows); see :mod:`hub.platform.statementbatch`."""
        return BatchedStatements(self.async_engine)

    @cached_property
    def redis(self) -> Redis:
        """Text-mode client (``decode_responses=True``) for the hub's own keys."""
        return redis.Redis.from_url(self.settings.redis_url, decode_responses=True,
                                    health_check_interval=30)

    @cached_property
    def redis_bytes(self) -> Redis:
        """Bytes-mode client; pybreaker's CircuitRedisStorage needs it."""
        return redis.Redis.from_url(self.settings.redis_url, decode_responses=False,
                                    health_check_interval=30)

    @cached_property
    def events(self) -> EventBus:
        """The event bus, on a client of its own with short timeouts: publishing an
        event must never hold the work that emits it."""
        timeout = self.settings.event_publish_timeout
        # One immediate retry (a connection Redis closed), not redis-py 8's default of
        # ten with exponential backoff, which would hold the caller for many seconds.
        client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True,
                                      socket_timeout=timeout, socket_connect_timeout=timeout,
                                      retry=Retry(NoBackoff(), 1), health_check_interval=30)
        return EventBus(client, stream=self.settings.event_stream,
                        maxlen=self.settings.event_stream_maxlen)

    @cached_property
    def vault(self) -> Vault:
        return Vault.from_settings(self.settings)

    def close(self) -> None:
        self.engine.dispose()
        for writes in ("durable_writes", "async_writes"):
            self.__dict__.pop(writes, None)
        for engine in ("async_engine", "autocommit_engine"):
            if engine in self.__dict__:
                self.__dict__.pop(engine).dispose()
        for name in ("redis", "redis_bytes", "events"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()
