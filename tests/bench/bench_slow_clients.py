"""Webhook ingest and /health while slow clients hold connections (issue 9, item 11).

    python tests/bench/bench_slow_clients.py [--slow 0,200,400] [--worker-classes gthread,gevent]

For each worker class and each number of slow clients, one after the other: gunicorn
serves ``webhooks_web:create_app()`` with webhooks_web/gunicorn.conf.py (only
WEB_WORKER_CLASS changed), the slow clients connect and send a byte a second (half in
their headers, half in a webhook body; one the server closes is replaced at once, so
the count stays up), and meanwhile

* wrk sends distinct signed Stripe webhooks (tests/bench/post.lua, ``-c16``);
* a probe GETs /health every 0.2 s (5 s timeout).

The row with 0 slow clients is the no-attack reference of the same run. Reports
accepted webhooks/s, their p50/p99, wrk's socket errors and timeouts, and the /health
probes answered and their worst latency. Uses the database ``hub_bench`` and Redis db
12, as bench_ingest.py does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.dev.embedded import free_port
from hub.platform.config import load_settings
from tests.bench.bench_ingest import (
    bench_env,
    prepare,
    start_gunicorn,
    write_requests,
    wrk,
)
from tests.webhooks_web.slow_clients import SlowClients


@dataclass
class Row:
    worker_class: str
    slow: int
    rate: float
    p50: float
    p99: float
    non_2xx: int
    socket_errors: int
    health_ok: int
    health_sent: int
    health_worst_ms: float
    closed_by_server: int


class HealthProbe:
    """GET /health every ``interval`` seconds until stopped; records each latency or None."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        self.url, self.interval = url, interval
        self.latencies: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                ok = requests.get(self.url, timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            self.latencies.append((time.perf_counter() - started) * 1000 if ok else None)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def measure(worker_class: str, slow_count: int, token: str, env: dict[str, str],
            args: argparse.Namespace, workdir: Path) -> Row:
    env = dict(env, WEB_WORKER_CLASS=worker_class)
    port = free_port()
    base, path = f"http://127.0.0.1:{port}", f"/api/v1/webhooks/stripe/{token}"
    proc = start_gunicorn("webhooks_web:create_app()", env, port)
    slow = probe = None
    try:
        write_requests(workdir / "run.txt", args.max_rate * args.duration)
        slow = SlowClients(base, path, slow_count, reconnect=True)
        time.sleep(args.settle)  # let every slow client reach the server before measuring
        probe = HealthProbe(base + "/health")
        found = wrk(port, path, workdir / "run.txt", args, args.duration)
    finally:
        if probe:
            probe.stop()
        if slow:
            slow.close()
        proc.terminate()
        proc.wait(timeout=60)
    answered = [ms for ms in (probe.latencies if probe else []) if ms is not None]
    return Row(worker_class, slow_count, found["ok"] / args.duration, found["p50"],
               found["p99"], int(found["other"]), int(found["errors"]), len(answered),
               len(probe.latencies) if probe else 0, max(answered, default=float("nan")),
               slow.closed_by_server if slow else 0)


def report(rows: list[Row]) -> str:
    lines = [("| worker class | slow clients | webhooks accepted/s | p50 ms | p99 ms | non-2xx | "
              "socket errors/timeouts | /health answered | /health worst ms | "
              "slow ones closed by the server |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.worker_class} | {r.slow} | {r.rate:.0f} | {r.p50:.1f} | "
                     f"{r.p99:.1f} | {r.non_2xx} | {r.socket_errors} | "
                     f"{r.health_ok}/{r.health_sent} | {r.health_worst_ms:.0f} | "
                     f"{r.closed_by_server} |")
    for worker_class in dict.fromkeys(r.worker_class for r in rows):
        reference = [r.rate for r in rows if r.worker_class == worker_class and r.slow == 0]
        attacked = [r for r in rows if r.worker_class == worker_class and r.slow]
        if reference and attacked:
            base = statistics.median(reference)
            lines.append(f"\n{worker_class}: under attack "
                         + ", ".join(f"{r.slow} slow: {r.rate / max(base, 1):.0%}"
                                     for r in attacked)
                         + " of the same run's no-attack rate")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", default="0,200,400",
                        help="numbers of slow clients, one run each")
    parser.add_argument("--worker-classes", default="gthread,gevent")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=16, help="WEB_THREADS (gthread)")
    parser.add_argument("--max-rate", type=int, default=3000)
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/hub_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    args.worker_class = "gevent"  # bench_env's default; each run sets its own
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    env = bench_env(args)  # one encryption key for the endpoint and every server
    token = prepare(load_settings(env))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for worker_class in args.worker_classes.split(","):
            for slow_count in (int(n) for n in args.slow.split(",")):
                row = measure(worker_class, slow_count, token, env, args, Path(workdir))
                print(row, flush=True)
                rows.append(row)
    redis.Redis.from_url(args.redis_url).flushdb()
    print(f"\n{os.cpu_count()} cores; gunicorn {args.workers} workers; wrk -t{args.wrk_threads} "
          f"-c{args.connections} -d{args.duration}s; slow clients: a byte a second\n")
    print(report(rows))


if __name__ == "__main__":
    main()
