"""Test session set-up: a fresh PostgreSQL database migrated by Alembic, its own
Redis database, queue names and key prefix, and a real embedded Celery worker.

Nothing here touches a developer's running hub: the database is
``hub_test_<random>`` (dropped at the end), Redis keys and queues carry a random
prefix. PostgreSQL and Redis come from HUB_TEST_DATABASE_URL / HUB_TEST_REDIS_URL
(defaults: the local servers); when those do not answer, embedded servers are
started (hub.dev.embedded), as ``hub dev`` does.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from hub.dev.embedded import drop_database, ensure_local_services

_RUN = secrets.token_hex(4)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_DB_NAME = f"hub_test_{_RUN}_{_WORKER}"

_local = ensure_local_services(
    os.environ.get("HUB_TEST_DATABASE_URL",
                   "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    Path(tempfile.gettempdir()) / "hub-test-services",
    database=_DB_NAME,
)
TEST_DATABASE_URL = _local.database_url
TEST_KEY = Fernet.generate_key().decode()

# Set before anything imports celeryconfig (it reads the environment once).
os.environ.update({
    "HUB_DATABASE_URL": TEST_DATABASE_URL,
    "HUB_REDIS_URL": _local.redis_url,
    "HUB_BROKER_URL": _local.redis_url,
    "HUB_RESULT_BACKEND": "",
    "HUB_ENCRYPTION_KEYS": TEST_KEY,
    "HUB_QUEUE_PREFIX": f"test{_RUN}{_WORKER}.",
    "HUB_REDIS_PREFIX": f"hubtest{_RUN}{_WORKER}:",
    "HUB_ALLOW_PRIVATE_NETWORKS": "1",
    "HUB_UNACKED_RESTORE_INTERVAL": "1",
})
os.environ.pop("HUB_RESULT_BACKEND")

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from hub.platform import migrate
from hub.platform.config import Settings, load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from hub.platform.vault import Vault


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session", autouse=True)
def database(settings: Settings) -> Iterator[str]:
    """The session's own database, migrated to head, dropped at the end."""
    migrate.upgrade(settings)
    yield settings.database_url
    from tasks.app import services as worker_services

    worker_services().close()
    drop_database(settings.database_url, _DB_NAME)


@pytest.fixture(scope="session", autouse=True)
def _redis_cleanup(settings: Settings) -> Iterator[None]:
    yield
    client = redis.Redis.from_url(settings.redis_url)
    for pattern in (settings.redis_prefix + "*", settings.queue_prefix + "*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()
    _local.stop()


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[Services]:
    svc = Services(settings, RecordingDispatcher())
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def sessions(services: Services) -> sessionmaker[Session]:
    return services.sessions


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture(scope="session")
def redis_client(services: Services) -> redis.Redis:
    return services.redis


@pytest.fixture(scope="session")
def vault(settings: Settings) -> Vault:
    return Vault.from_settings(settings)


@pytest.fixture
def tenant() -> str:
    """A fresh tenant id: tests never see each other's rows."""
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def celery_app():  # type: ignore[no-untyped-def]
    import celery.contrib.testing.tasks  # noqa: F401 - registers celery.ping for start_worker

    from tasks.app import app

    return app


#: Threads of the embedded worker: enough for calls to overlap, so the suite runs the
#: hub's shared objects (sessions, breakers, token single-flight) as production does.
WORKER_THREADS = 8


@pytest.fixture(scope="session")
def worker(celery_app, settings: Settings):  # type: ignore[no-untyped-def]
    """A real Celery worker with the hub's pool (threads) consuming the session's queues."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(celery_app, pool=settings.worker_pool, concurrency=WORKER_THREADS,
                      perform_ping_check=True, loglevel="WARNING", shutdown_timeout=30) as w:
        yield w


@pytest.fixture(scope="session")
def client_app(settings: Settings):  # type: ignore[no-untyped-def]
    """A Celery client that imports nothing from the hub: broker URL, backend URL, names."""
    client = outside_client(settings)
    yield client
    client.close()


# --- the broker switch: broker-dependent tests run on Redis and on RabbitMQ --------------

RABBITMQ_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


class Broker:
    """One broker flavour for a test: its URL, a client app, the env of worker processes.

    ``redis``: a redis-server of the test's own (it may be stopped or flushed), run as
    the recipes run it, also serving as the hub's Redis. ``rabbitmq``: the machine's
    RabbitMQ (quorum queues), with the session's Redis for the hub's own keys.
    """

    def __init__(self, name: str, url: str, redis_url: str, settings: Settings) -> None:
        from celery import Celery

        import celeryconfig

        self.name, self.url, self.redis_url = name, url, redis_url
        self.settings = dataclasses.replace(settings, broker_url=url, redis_url=redis_url)
        self.app = Celery("outside-service", broker=url,
                          backend=settings.effective_result_backend)
        self.app.conf.update(celeryconfig.broker_settings(self.settings),
                             task_serializer="json")
        self.env = {"HUB_BROKER_URL": url, "HUB_REDIS_URL": redis_url}
        self.queues: list[str] = []

    def queue(self, label: str) -> str:
        """A queue of this test alone (deleted from RabbitMQ at the end)."""
        name = self.settings.queue(f"{label}-{secrets.token_hex(3)}")
        self.queues.append(name)
        return name

    def close(self) -> None:
        if self.name == "rabbitmq" and self.queues:
            # Each queue made for a missing route has an exchange of its name.
            delete_rabbitmq_queues(self.app, self.queues, self.queues)
        self.app.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def hub_broker(request, settings: Settings) -> Iterator[Broker]:
    if request.param == "redis":
        from tests.faults.servers import redis_server

        with redis_server() as server:
            chosen = Broker("redis", server.url, server.url, settings)
            yield chosen
            chosen.close()
    else:
        chosen = Broker("rabbitmq", RABBITMQ_URL, settings.redis_url, settings)
        yield chosen
        chosen.close()


# --- the hub's worker and an outside client on each broker (the core end-to-end paths) --


@dataclasses.dataclass
class HubOnBroker:
    """A running hub worker and the clients that reach it, on one broker.

    ``client``: an outside service's Celery client (broker URL, backend URL, task names;
    on RabbitMQ also README's two queue settings); ``sender``: the hub's own sending app
    on that broker (CeleryDispatcher, dlq replay); ``settings``: the hub's settings on
    that broker (a web app made with them publishes there); ``worker``: the worker's
    hostname (for remote control: other runs' workers share RabbitMQ's pidbox).
    """

    name: str
    settings: Settings
    client: Any
    sender: Any
    worker: str


def outside_client(settings: Settings):  # type: ignore[no-untyped-def]
    """A Celery client that imports nothing from the hub, configured as README says."""
    from celery import Celery

    client = Celery("outside-service", broker=settings.effective_broker_url,
                    backend=settings.effective_result_backend)
    # Production clients use the default queue "celery"; the test run has its own.
    client.conf.task_default_queue = settings.queue("celery")
    client.conf.task_serializer = "json"
    if settings.broker_is_amqp:  # README "Reliability settings": a RabbitMQ hub's client
        client.conf.task_default_queue_type = "quorum"
        client.conf.task_default_exchange_type = "topic"
    return client


def delete_rabbitmq_queues(app, queues: list[str], exchanges: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Delete a test's queues and exchanges from RabbitMQ (missing ones are skipped)."""
    with app.connection_for_write() as conn:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                try:  # a channel each: deleting a missing one closes the channel
                    channel = conn.channel()
                    getattr(channel, f"{kind}_delete")(name)
                    channel.close()
                except conn.channel_errors:
                    pass


@pytest.fixture(scope="session")
def rabbitmq_hub(settings: Settings, database: str) -> Iterator[HubOnBroker]:
    """A hub worker process on the machine's RabbitMQ (quorum queues, native delayed
    delivery), on every hub queue of this run (named by the run's prefix, deleted at the
    end), with the session's PostgreSQL and Redis."""
    import celeryconfig
    from celerydispatch import sender_app
    from hub.ops.queues import broker_queues
    from tests.calls.processes import worker_process

    on_rabbitmq = dataclasses.replace(settings, broker_url=RABBITMQ_URL)
    client = outside_client(on_rabbitmq)
    sender = sender_app("hub-test", **celeryconfig.broker_settings(on_rabbitmq))
    queues = list(broker_queues(on_rabbitmq).values())
    try:
        with worker_process(client, queues, app="tasks", pool=settings.worker_pool,
                            concurrency=WORKER_THREADS, env={"HUB_BROKER_URL": RABBITMQ_URL}) as proc:
            yield HubOnBroker("rabbitmq", on_rabbitmq, client, sender, proc.hostname)
    finally:
        delete_rabbitmq_queues(sender, queues,
                               [on_rabbitmq.queue("celery"), on_rabbitmq.queue("hub")])
        client.close()
        sender.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def on_broker(request) -> HubOnBroker:  # type: ignore[no-untyped-def]
    """The hub's worker and clients on each broker: ``redis``, the session's embedded
    worker; ``rabbitmq``, a worker process of the session on RabbitMQ."""
    if request.param == "rabbitmq":
        return request.getfixturevalue("rabbitmq_hub")
    embedded = request.getfixturevalue("worker")
    return HubOnBroker("redis", request.getfixturevalue("settings"),
                       request.getfixturevalue("client_app"),
                       request.getfixturevalue("celery_app"), embedded.hostname)
