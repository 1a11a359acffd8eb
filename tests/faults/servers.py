"""Servers a fault test owns: its own redis-server and PostgreSQL cluster, on free
ports, stopped, killed and restarted by PID (never the machine's shared servers)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from celery import Celery
from cryptography.fernet import Fernet

from hub.dev.embedded import create_database, free_port, with_database
from hub.platform import migrate
from hub.platform.config import Settings, load_settings


def _wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout}s")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


class RedisServer:
    """A redis-server of the test's own; ``persistent`` runs it as the recipes do (AOF)."""

    def __init__(self, *, persistent: bool = True, bind: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.bind = bind
        self.persistent = persistent
        self.dir = Path(tempfile.mkdtemp(prefix="hub-fault-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.bind, port=self.port, socket_timeout=5,
                           socket_connect_timeout=2)

    def start(self) -> None:
        flags = (["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent
                 else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", self.bind, "--save", "",
             "--dir", str(self.dir), "--maxmemory-policy", "noeviction", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(self._answers, 20, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait for the exit."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_server(**kwargs) -> Iterator[RedisServer]:  # type: ignore[no-untyped-def]
    server = RedisServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.close()


class PostgresCluster:
    """An initdb cluster of the test's own (run as the ``postgres`` user when root)."""

    BIN = Path(shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb").parent

    def __init__(self, *, port: int | None = None, listen: str = "127.0.0.1") -> None:
        self.port = port or free_port()
        self.listen = listen
        self.dir = Path(tempfile.mkdtemp(prefix="hub-fault-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.BIN / args[0]), *args[1:]], check=True, user=self._user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", f"listen_addresses={self.listen}", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=on", "-c", "max_connections=200"],
            user=self._user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        _wait(self._answers, 60, f"PostgreSQL on port {self.port}")

    def _answers(self) -> bool:
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                 dbname="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def crash(self) -> None:
        """kill -9 the postmaster and its backends, as a crashed host would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        self.proc = None
        _wait(lambda: _port_free("127.0.0.1", self.port), 20, "the port to free")

    def close(self) -> None:
        self.crash()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@dataclass
class OwnHub:
    """A hub of a fault test's own: a PostgreSQL cluster and a redis-server (broker and
    state) it may crash, the HUB_* settings its processes get, and an outside client
    that knows only task names."""

    pg: PostgresCluster
    redis: RedisServer
    env: dict[str, str]
    settings: Settings
    client: Celery


@contextmanager
def own_hub(extra_env: dict[str, str] | None = None) -> Iterator[OwnHub]:
    """Start :class:`OwnHub`'s servers, migrate its database, make its client; stop all."""
    with postgres_cluster() as pg, redis_server() as broker:
        create_database(pg.url, "hub")
        env = {"HUB_DATABASE_URL": with_database(pg.url, "hub"), "HUB_REDIS_URL": broker.url,
               "HUB_BROKER_URL": broker.url, "HUB_QUEUE_PREFIX": "", "HUB_REDIS_PREFIX": "hub:",
               "HUB_RESULT_BACKEND": "", "HUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
               "HUB_ALLOW_PRIVATE_NETWORKS": "1", "HUB_LOG_FORMAT": "text",
               **(extra_env or {})}
        settings = load_settings({**os.environ, **env})
        migrate.upgrade(settings)
        client = Celery("outside-service", broker=broker.url,
                        backend=settings.effective_result_backend)
        client.conf.update(task_serializer="json", result_extended=True)
        client.backend  # noqa: B018 - its tables are made while PostgreSQL is up
        try:
            yield OwnHub(pg, broker, env, settings, client)
        finally:
            client.close()
