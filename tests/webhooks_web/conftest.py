"""Webhook app fixtures: real PostgreSQL and Redis; the app's broker is a side Redis
database so the session's embedded worker never takes the messages these tests inspect."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask

from hub.platform.config import Settings
from hub.platform.db import transaction
from hub.webhooks import endpoints
from webhooks_web import create_app


def side_redis_url(url: str) -> str:
    """The same Redis server, another database number (14 unless the suite uses 14)."""
    parts = urlsplit(url)
    db = "13" if parts.path.strip("/") == "14" else "14"
    return parts._replace(path="/" + db).geturl()


def close_app(app: Flask) -> None:
    state = app.extensions["hub"]
    state.intake.close()
    state.services.close()
    state.services.dispatcher.close()
    state.celery.close()
    state.state_metrics.close()


@pytest.fixture(scope="session")
def broker_url(settings: Settings) -> str:
    return side_redis_url(settings.redis_url)


@pytest.fixture(scope="session")
def broker(broker_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def web_settings(settings: Settings, broker_url: str) -> Settings:
    return dataclasses.replace(settings, broker_url=broker_url)


@pytest.fixture(scope="session")
def app(web_settings: Settings) -> Iterator[Flask]:
    app = create_app(web_settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def sent(broker: redis.Redis, settings: Settings) -> Callable[[], list[tuple[str, dict[str, Any]]]]:
    """Read (task name, kwargs) of every message on the side broker's webhooks queue."""
    queue = settings.queue("webhooks")
    broker.delete(queue)

    def read() -> list[tuple[str, dict[str, Any]]]:
        messages = [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[1])
                for m in reversed(messages)]

    yield read
    broker.delete(queue)


@pytest.fixture
def make_endpoint(services, tenant) -> Callable[..., endpoints.CreatedEndpoint]:
    """Create an endpoint for the test's tenant; returns id, token, url."""

    def make(source: str = "stripe", scheme: str = "stripe", **fields: Any):
        spec = endpoints.EndpointSpec(tenant=tenant, source=source, scheme=scheme, **fields)
        with transaction(services.sessions) as session:
            return endpoints.create(session, services.vault, services.settings, spec)

    return make


def url_of(created: endpoints.CreatedEndpoint, source: str = "stripe") -> str:
    return f"/api/v1/webhooks/{source}/{created.token}"


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


@pytest.fixture
def free_port() -> int:
    """A local port nothing listens on (for a database or broker that is down)."""
    from hub.dev.embedded import free_port as pick

    return pick()


@pytest.fixture
def broker_down_app(web_settings: Settings, free_port: int) -> Iterator[Flask]:
    """The webhook app with its broker URL pointing at a port nothing listens on."""
    app = create_app(dataclasses.replace(web_settings,
                                         broker_url=f"redis://127.0.0.1:{free_port}/0"))
    yield app
    close_app(app)


@pytest.fixture(scope="session")
def read_only_database_url(settings: Settings) -> Iterator[str]:
    """The test database through a role whose transactions are read-only: lookups work,
    writes are refused, as on a primary that failed over to a read-only replica."""
    import secrets

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from hub.dev.embedded import libpq_url

    role = f"hub_ro_{secrets.token_hex(4)}"
    statements = [
        "CREATE ROLE {role} LOGIN",
        "ALTER ROLE {role} SET default_transaction_read_only = on",
        "GRANT USAGE ON SCHEMA public TO {role}",
        "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}",
    ]
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(sql.SQL(statement).format(role=sql.Identifier(role)))
    yield make_url(settings.database_url).set(username=role).render_as_string(
        hide_password=False)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {role}").format(role=sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {role}").format(role=sql.Identifier(role)))
