"""Dependency checks shared by ``hub health`` and the web app's readiness probe."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
import redis
from sqlalchemy import create_engine, pool, text

from hub.platform import migrate
from hub.platform.config import Settings
from hub.platform.persistence import redis_warnings

log = logging.getLogger(__name__)


def check_postgres(settings: Settings) -> str:
    """Return the schema revision; raise if PostgreSQL does not answer."""
    engine = create_engine(settings.database_url, poolclass=pool.NullPool,
                           connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    head = migrate.head_revision(settings)
    current = migrate.current(settings)
    if current != head:
        raise RuntimeError(f"schema at {current or 'base'}, expected {head}: run `hub db upgrade`")
    return f"schema at {current}"


def _check_redis(url: str, *, broker: bool) -> tuple[str, list[str]]:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        return "answers PING", redis_warnings(client, broker=broker)
    finally:
        client.close()


def _check_amqp(url: str) -> tuple[str, list[str]]:
    """Open and close an AMQP connection (RabbitMQ); raise if it cannot."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
                                 userid=unquote(parts.username or "guest"),
                                 password=unquote(parts.password or "guest"),
                                 virtual_host=vhost, ssl=parts.scheme == "amqps",
                                 connect_timeout=3)
    try:
        connection.connect()
        version = connection.server_properties.get("version", "?")
        version = version.decode() if isinstance(version, bytes) else version
        return f"RabbitMQ {version} answers", []
    finally:
        connection.close()


def _one_line(exc: BaseException) -> str:
    """``Type: first line``: drivers (libpq) write several lines, a report wants one."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:300]


def check_all(settings: Settings) -> dict[str, Any]:
    """Run every check; never raises.

    ``{"ok": bool, "checks": {name: {ok, detail, warnings}}}``: a warning (a Redis that
    can lose work, see :func:`redis_warnings`) does not make the report fail.
    """
    broker_url = settings.effective_broker_url
    checks = {
        "postgres": lambda: (check_postgres(settings), []),
        "redis": lambda: _check_redis(settings.redis_url, broker=False),
        "broker": lambda: (_check_amqp(broker_url) if settings.broker_is_amqp
                           else _check_redis(broker_url, broker=True)),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        try:
            detail, warnings = check()
            results[name] = {"ok": True, "detail": detail, "warnings": warnings}
        except Exception as exc:  # noqa: BLE001 - a health report names every failure
            results[name] = {"ok": False, "detail": _one_line(exc), "warnings": []}
    return {"ok": all(r["ok"] for r in results.values()), "checks": results}


def readiness(settings: Settings) -> dict[str, Any]:
    """:func:`check_all` for a public port: ``{"ok", "checks": {name: {"ok"}}}``.

    The web app's ``/health/ready`` answers anyone who can reach the provider-facing
    port, so it says which dependency is down and nothing more: a failure's detail
    (host, port, the driver's message) goes to the log, at WARNING, and ``hub health``
    shows it to the operator (issue 9, item 12). Never raises.
    """
    report = check_all(settings)
    for name, check in report["checks"].items():
        if not check["ok"]:
            log.warning("readiness: %s is not ready: %s", name, check["detail"])
    return {"ok": report["ok"],
            "checks": {name: {"ok": check["ok"]} for name, check in report["checks"].items()}}
