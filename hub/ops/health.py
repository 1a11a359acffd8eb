"""Dependency checks shared by ``hub health`` and the web app's readiness probe."""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import create_engine, pool, text

from hub.platform import migrate
from hub.platform.config import Settings

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


def _ping_redis(url: str) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        return "answers PING"
    finally:
        client.close()


def check_all(settings: Settings) -> dict[str, Any]:
    """Run every check; never raises. ``{"ok": bool, "checks": {name: {ok, detail}}}``."""
    checks = {
        "postgres": lambda: check_postgres(settings),
        "redis": lambda: _ping_redis(settings.redis_url),
        "broker": lambda: _ping_redis(settings.effective_broker_url),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as exc:  # noqa: BLE001 - a health report names every failure
            results[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
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
