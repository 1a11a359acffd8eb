"""Reference apps for bench_ingest.py, served by the same gunicorn config as the hub.

``bare_app``: a Flask endpoint that answers 202 and does nothing (the HTTP ceiling).
``raw_app``: one INSERT of the body and one Redis LPUSH per request, nothing else
(the durable ceiling the hub's ingest is compared with).
"""

from __future__ import annotations

import os

import redis
from flask import Flask, request

from hub.platform.config import load_settings
from hub.webhooks.store import make_intake_engine

ROUTE = "/api/v1/webhooks/<source>/<token>"
RAW_TABLE = "bench_raw"
RAW_QUEUE = "bench:raw"


def _health(app: Flask) -> None:
    app.add_url_rule("/health", "health", lambda: {"status": "ok"})


def bare_app() -> Flask:
    app = Flask(__name__)
    _health(app)

    @app.post(ROUTE)
    def receive(source: str, token: str) -> tuple[dict[str, object], int]:
        request.get_data(cache=False)
        return {"id": None, "duplicate": False}, 202

    return app


def raw_app() -> Flask:
    settings = load_settings()
    # The same engine and driver path as the hub's event store (hub.webhooks.store):
    # autocommit (the INSERT is one round trip, committed when it returns), no pre-ping,
    # a prepared statement on the pooled psycopg connection.
    # A pool as large as the requests a worker runs at once (WEB_THREADS, which
    # bench_ingest.py sets to 16 for every worker class): with fewer, concurrent requests
    # would open and close overflow connections (a PostgreSQL backend each) every time.
    threads = int(os.environ.get("WEB_THREADS", "1"))
    engine = make_intake_engine(settings, pool_size=max(5, threads))
    client = redis.Redis.from_url(settings.effective_broker_url)
    insert = f"INSERT INTO {RAW_TABLE} (body) VALUES (%s) RETURNING id"
    app = Flask(__name__)
    _health(app)

    @app.post(ROUTE)
    def receive(source: str, token: str) -> tuple[dict[str, object], int]:
        pooled = engine.raw_connection()
        try:
            row_id = pooled.driver_connection.execute(  # type: ignore[union-attr]
                insert, (request.get_data(cache=False),), prepare=True).fetchone()[0]
        finally:
            pooled.close()
        client.lpush(RAW_QUEUE, str(row_id))
        return {"id": str(row_id), "duplicate": False}, 202

    return app


class _NoDispatch:
    def send(self, name: str, kwargs: dict[str, object], **options: object) -> str:
        return ""


def hub_without_enqueue_app() -> Flask:
    """The hub app with the enqueue left out: what the task message costs (diagnosis)."""
    from webhooks_web import create_app

    app = create_app()
    app.extensions["hub"].services.dispatcher = _NoDispatch()
    return app
