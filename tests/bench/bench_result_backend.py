"""What storing task results costs: no-op throughput of a prefork worker (-c 2).

Runs `hub.ping` through a real `celery -A tasks worker --pool prefork -c 2`
subprocess three ways: results in PostgreSQL (the hub's default, Celery's
SQLAlchemy backend over psycopg 3), results in Redis, and no stored result
(`ignore_result=True`, how internal tasks run). Prints one Markdown table row
per mode.

    python tests/bench/bench_result_backend.py [--tasks 2000]

Uses its own database (hub_bench) and queue prefix; needs local PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
DB = "hub_bench"
PREFIX = "bench."


def _env(backend: str) -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=REDIS, HUB_RESULT_BACKEND=backend, HUB_QUEUE_PREFIX=PREFIX,
                HUB_ENCRYPTION_KEYS="", HUB_LOG_LEVEL="WARNING")


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "2",
         "--loglevel", "WARNING", "-Q", PREFIX + "celery", "--without-gossip", "--without-mingle",
         "--without-heartbeat"], cwd=ROOT, env=env)


def _drained(client: redis.Redis) -> bool:
    return client.llen(PREFIX + "celery") == 0 and client.hlen("unacked") == 0


def run(mode: str, backend: str, tasks: int) -> tuple[str, float]:
    env = _env(backend)
    app = Celery(broker=REDIS, backend=backend or env["HUB_RESULT_BACKEND"] or
                 "db+" + env["HUB_DATABASE_URL"])
    app.conf.task_default_queue = PREFIX + "celery"
    worker = _worker(env)
    try:
        app.send_task("hub.ping").get(timeout=60)  # warm: worker up, pools connected
        store = mode != "none"
        started = time.perf_counter()
        results = [app.send_task("hub.ping", ignore_result=not store) for _ in range(tasks)]
        # Worker-side throughput: until the queue is drained and nothing is unacknowledged
        # (a client polling results would measure its own poll interval instead).
        client = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + 600
        while not _drained(client) and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        if store:
            assert all(r.get(timeout=60)["pong"] == "ok" for r in results)
    finally:
        worker.terminate()
        worker.wait(30)
    return mode, tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    create_database(SERVER, DB)
    migrate.upgrade(load_settings(_env("")))
    redis.Redis.from_url(REDIS).flushdb()
    modes = [("postgresql (db+postgresql+psycopg)", ""), ("redis", REDIS), ("none", "")]
    print("| results stored in | tasks/s |\n|---|---|")
    for mode, backend in modes:
        name, rate = run(mode, backend, args.tasks)
        print(f"| {name} | {rate:,.0f} |", flush=True)
    drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
