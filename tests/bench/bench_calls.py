"""Outbound call pipeline: the hub's overhead per call, cached-call latency, and
end-to-end ``send_task("hub.call")`` -> result through 2 prefork worker processes.

Against a local fake provider (ThreadingHTTPServer, HTTP/1.1 keep-alive, JSON):

1. overhead: the same POST sent N times by a plain pooled ``requests.Session`` and
   by ``hub.calls.pipeline.execute_call`` in this process (cache off: ``post`` is not
   cacheable; api_key auth, quota check, breaker, audit row, events all on);
2. cached: ``get`` served from the cache (L1 Redis), p50/p95;
3. end to end: one worker ``celery -A tasks worker --pool prefork -c 2``; latency of
   one call at a time (client polls the PostgreSQL result backend every 5 ms), then
   throughput with every call in flight at once.

    python tests/bench/bench_calls.py [--calls 1000] [--e2e 500]

Uses its own database (hub_bench_calls), Redis db 11 and queue prefix; needs local
PostgreSQL and Redis. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.calls.pipeline import CallRequest, execute_call
from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import IntegrationLog
from hub.platform.services import Services

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_CALLS_REDIS_URL", "redis://127.0.0.1:6379/11")
DB = "hub_bench_calls"
PREFIX = "benchcalls."
KEY = Fernet.generate_key().decode()
API_KEY = "ak_bench_" + uuid.uuid4().hex
BODY = json.dumps({"id": "obj_1", "status": "ok", "items": list(range(20))}).encode()


def _env() -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=REDIS, HUB_QUEUE_PREFIX=PREFIX, HUB_ENCRYPTION_KEYS=KEY,
                HUB_REDIS_PREFIX="benchcalls:", HUB_ALLOW_PRIVATE_NETWORKS="1",
                HUB_LOG_LEVEL="WARNING")


class _Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 200 if self.headers.get("X-Api-Key") == API_KEY else 401
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _timed(func, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


def _row(name: str, samples: list[float]) -> str:
    return (f"| {name} | {statistics.mean(samples):.2f} | {_pct(samples, 50):.2f} | "
            f"{_pct(samples, 95):.2f} |")


def _setup(svc: Services, url: str) -> str:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    with svc.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(tenant_id=tenant, name="api", adapter="rest",
                                                     base_url=url, auth_type="api_key",
                                                     config={"cache_ttl": 3600}))
        integrations.set_credentials(session, svc.vault, tenant, "api", {"api_key": API_KEY})
    return tenant


def in_process(svc: Services, tenant: str, url: str, calls: int) -> None:
    direct = requests.Session()
    post = CallRequest(tenant, "api", "post", {"path": "/v1/objects", "json": {"n": 1}})
    get = CallRequest(tenant, "api", "get", {"path": "/v1/objects/1"})

    def raw() -> None:
        response = direct.post(url + "/v1/objects", json={"n": 1}, headers={"X-Api-Key": API_KEY},
                               timeout=5)
        response.raise_for_status()
        response.json()

    def hub_call() -> None:
        assert execute_call(svc, post).status == "success"

    def cached() -> None:
        outcome = execute_call(svc, get)
        assert outcome.result["cached"], outcome

    for warm in (raw, hub_call):
        _timed(warm, 50)  # warm-up: pools, sessions, prepared statements
    assert execute_call(svc, get).status == "success"
    direct_ms, hub_ms = _timed(raw, calls), _timed(hub_call, calls)
    cached_ms = _timed(cached, calls)
    print("| in-process (ms per call) | mean | p50 | p95 |\n|---|---|---|---|")
    print(_row("direct requests POST", direct_ms))
    print(_row("hub execute_call POST (cache off)", hub_ms))
    print(_row("hub execute_call GET served from cache", cached_ms))
    print(f"\noverhead of the pipeline per call: mean "
          f"{statistics.mean(hub_ms) - statistics.mean(direct_ms):.2f} ms, p50 "
          f"{_pct(hub_ms, 50) - _pct(direct_ms, 50):.2f} ms\n")


def end_to_end(app: Celery, svc: Services, tenant: str, latency_calls: int,
               throughput_calls: int) -> None:
    kwargs = {"tenant": tenant, "integration": "api", "operation": "post",
              "params": {"path": "/v1/objects", "json": {"n": 1}}}
    queue = PREFIX + "calls"

    def one() -> None:
        result = app.send_task("hub.call", kwargs=kwargs, queue=queue)
        assert result.get(timeout=30, interval=0.005)["ok"]

    def ping() -> None:
        assert app.send_task("hub.ping", queue=queue).get(timeout=30, interval=0.005)

    _timed(one, 20)
    baseline = _timed(ping, latency_calls)
    latency = _timed(one, latency_calls)
    call_rate = _throughput(app, svc, tenant, kwargs, queue, throughput_calls)
    print("| end to end, 2 prefork processes | mean | p50 | p95 |\n|---|---|---|---|")
    print(_row("hub.ping (no-op task) -> result, one at a time (ms)", baseline))
    print(_row("hub.call POST -> result, one at a time (ms)", latency))
    print(f"\nthroughput, {throughput_calls} hub.call in flight: {call_rate:,.0f} calls/s")


def _successes(svc: Services, tenant: str) -> int:
    with svc.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(IntegrationLog).where(
            IntegrationLog.tenant_id == tenant, IntegrationLog.outcome == "success")) or 0)


def _throughput(app: Celery, svc: Services, tenant: str, kwargs: dict[str, Any], queue: str,
                count: int) -> float:
    """Calls/s the workers complete, timed until PostgreSQL holds every call's audit row
    (a client calling ``.get()`` on each result would measure the database result
    backend's new connection per lookup instead)."""
    before = _successes(svc, tenant)
    started = time.perf_counter()
    for _ in range(count):
        app.send_task("hub.call", kwargs=kwargs, queue=queue)
    while _successes(svc, tenant) < before + count:
        time.sleep(0.02)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--e2e", type=int, default=500)
    args = parser.parse_args()
    env = _env()
    os.environ.update(env)
    create_database(SERVER, DB)
    settings = load_settings(env)
    migrate.upgrade(settings)
    redis.Redis.from_url(REDIS).flushdb()
    svc = Services(settings, RecordingDispatcher())
    provider = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{provider.server_port}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "2",
         "--loglevel", "WARNING", "-Q", PREFIX + "calls", "--without-gossip",
         "--without-mingle", "--without-heartbeat"], cwd=ROOT, env=env)
    app = Celery(broker=REDIS, backend="db+" + settings.database_url)
    try:
        tenant = _setup(svc, url)
        in_process(svc, tenant, url, args.calls)
        end_to_end(app, svc, tenant, min(args.e2e, 300), args.e2e)
    finally:
        worker.terminate()
        worker.wait(30)
        provider.shutdown()
        app.close()
        svc.close()
        drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
