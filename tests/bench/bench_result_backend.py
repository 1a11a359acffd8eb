"""What storing task results costs: no-op throughput of one worker, by result store.

Runs ``hub.ping`` through a real ``celery -A tasks worker`` subprocess, for each pool
(``prefork -c 2``, as before issue 10, and ``threads -c 64``, the hub's default) and
each way of storing results:

* ``celery-db``: Celery's own SQLAlchemy backend (``--result-backend db+postgresql+psycopg://``
  on the command line): what a client reads, written the stock way (outside a prefork
  child it opens a new PostgreSQL connection per result);
* ``hub-db``: the hub's writer (celeryresults.HubDatabaseBackend), the same table and
  encoding, pooled and group-committed;
* ``redis``; ``none`` (``ignore_result``, as internal tasks run).

2,000 tasks sent by one client, timed until the queue is drained and nothing is
left unacknowledged; every stored result is then read back through Celery's stock
database backend (the client's path). Prints one Markdown table row per run.

    python tests/bench/bench_result_backend.py [--tasks 2000] [--pools prefork,threads]

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


CONCURRENCY = {"prefork": "2", "threads": "64"}


def _env(backend: str, pool: str = "prefork") -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=REDIS, HUB_RESULT_BACKEND=backend, HUB_QUEUE_PREFIX=PREFIX,
                HUB_ENCRYPTION_KEYS="", HUB_LOG_LEVEL="WARNING", HUB_WORKER_POOL=pool)


def _worker(env: dict[str, str], pool: str, cli_backend: str | None) -> subprocess.Popen[bytes]:
    override = ["--result-backend", cli_backend] if cli_backend else []
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", *override, "worker", "--pool", pool,
         "-c", CONCURRENCY[pool], "--loglevel", "WARNING", "-Q", PREFIX + "celery",
         "--without-gossip", "--without-mingle", "--without-heartbeat"], cwd=ROOT, env=env)


def _drained(client: redis.Redis) -> bool:
    return client.llen(PREFIX + "celery") == 0 and client.hlen("unacked") == 0


def run(mode: str, pool: str, tasks: int) -> float:
    env = _env(REDIS if mode == "redis" else "", pool)
    database = "db+" + env["HUB_DATABASE_URL"]
    app = Celery(broker=REDIS, backend=REDIS if mode == "redis" else database)
    app.conf.task_default_queue = PREFIX + "celery"
    worker = _worker(env, pool, database if mode == "celery-db" else None)
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
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--pools", default="prefork,threads")
    args = parser.parse_args()
    create_database(SERVER, DB)
    migrate.upgrade(load_settings(_env("")))
    redis.Redis.from_url(REDIS).flushdb()
    print(f"load average {os.getloadavg()[0]:.1f}\n")
    print("| pool | results stored by | tasks/s | load avg after |\n|---|---|---|---|")
    for pool in args.pools.split(","):
        for mode in ("celery-db", "hub-db", "redis", "none"):
            rate = run(mode, pool, args.tasks)
            print(f"| {pool} -c {CONCURRENCY[pool]} | {mode} | {rate:,.0f} | "
                  f"{os.getloadavg()[0]:.1f} |", flush=True)
    drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
