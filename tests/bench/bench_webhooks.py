"""Webhooks end to end: signed request accepted -> processed -> signed delivery acknowledged.

Everything runs as the Procfile starts it: the web app (``web:`` line: gunicorn with
webhooks_web/gunicorn.conf.py) and the worker (``worker:`` line). One Stripe endpoint
and one subscription (``stripe.*``) to a subscriber answering 204 after 200 ms
(tests/bench/fake_api.py, its own asyncio process). wrk POSTs distinct Stripe events,
each signed (tests/bench/post.lua); PostgreSQL is sampled every 0.5 s for events
stored, processed and delivered (delivery row ``succeeded``: the subscriber's 2xx).

1. burst: N events as fast as the web app takes them; reports the ingest rate, the
   end-to-end rate (N / first accepted -> last delivered), the time to drain (last
   accepted -> last delivered), the largest backlog and per-event latency
   (received_at -> delivered_at).
2. sustained: wrk paced to about ``--rate`` events/s for ``--duration`` s (128
   connections, each pausing between requests); reports the rates over the run and the
   backlog at its start and end (draining as fast as it fills keeps it flat).
3. reference, same run: N ``bench.plain_post`` tasks (tests/bench/ref_tasks.py: a
   plain Celery task POSTing with requests) queued, then drained by the same worker
   command to the same subscriber: what the worker alone POSTs per second.

    python tests/bench/bench_webhooks.py [--burst 10000] [--rate 350] [--duration 30]

``--cpu N`` instead: N events accepted while no worker runs, then the worker started
and its CPU per delivered event (user + system of its processes, psutil) measured over
``--cpu-window`` seconds of the drain, with the machine's busy CPU beside it; with
``--profile PREFIX`` py-spy samples one worker process meanwhile (``--gil``: where its
CPU goes, not where its threads wait for the GIL; raw collapsed stacks to a file).

Uses its own database (hub_bench_hooks) and Redis db 8; needs local PostgreSQL,
Redis and wrk.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.deliveries import subscriptions
from hub.dev.embedded import drop_database, free_port, with_database
from hub.platform.config import Settings, load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from tests.bench.bench_calls import (
    cpu_seconds,
    procfile_worker,
    profile_worker,
    start_worker,
    stop_worker,
    wait_stored,
    worker_processes,
    worker_rss_mib,
)
from tests.bench.bench_ingest import (
    machine_busy_seconds,
    prepare,
    start_gunicorn,
    write_requests,
)

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_HOOKS_REDIS_URL", "redis://127.0.0.1:6379/8")
DB = "hub_bench_hooks"
WRK_THREADS, WRK_CONNECTIONS = 2, 16
#: Connections of the paced run. wrk paces each connection (a pause after every answer),
#: so the rate offered is connections / (pause + latency): with few connections the
#: web app's latency under load, not the rate asked, set it (16 offered 250-300 of 350/s).
PACED_CONNECTIONS = 128


def _env() -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=REDIS, HUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                HUB_REDIS_PREFIX="benchhooks:", HUB_ALLOW_PRIVATE_NETWORKS="1",
                HUB_LOG_LEVEL="WARNING")


def start_subscriber() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/bench/fake_api.py"),
                             "--delay", "0.2"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}"


def counts(svc: Services) -> tuple[int, int, int]:
    """(events stored, events processed, deliveries succeeded)."""
    with svc.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT (SELECT count(*) FROM webhook_events), "
            "(SELECT count(*) FROM webhook_events WHERE status = 'processed'), "
            "(SELECT count(*) FROM deliveries WHERE status = 'succeeded')")).one()
    return int(row[0]), int(row[1]), int(row[2])


def wrk(port: int, path: str, lines: Path, delay_ms: int,
        connections: int = WRK_CONNECTIONS) -> subprocess.Popen[str]:
    env = dict(os.environ, BENCH_REQUESTS=str(lines), BENCH_PATH=path,
               BENCH_THREADS=str(WRK_THREADS), BENCH_DELAY_MS=str(delay_ms), BENCH_ONCE="1")
    return subprocess.Popen(
        ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", "600s",
         "--timeout", "10s", "--latency", "-s", str(ROOT / "tests/bench/post.lua"),
         f"http://127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, text=True)


def watch(svc: Services, total: int, load: subprocess.Popen[str],
          timeout: float = 1200) -> list[tuple[float, int, int, int]]:
    """Samples (time, stored, processed, delivered) until ``total`` are delivered; then
    stops wrk (its threads are done, but its main thread sleeps out ``-d``)."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append((time.monotonic(), *counts(svc)))
        if samples[-1][3] >= total:
            load.send_signal(signal.SIGINT)
            load.wait(30)
            return samples
        time.sleep(0.5)
    load.kill()
    raise SystemExit(f"only {samples[-1][3]} of {total} delivered in {timeout:.0f} s")


def _first(samples: list[tuple[float, int, int, int]], column: int, at_least: int) -> float:
    return next(s[0] for s in samples if s[column] >= at_least)


def latencies(svc: Services) -> list[float]:
    with svc.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT extract(epoch FROM d.delivered_at - e.received_at) * 1000 "
            "FROM deliveries d JOIN webhook_events e ON e.id = d.event_id "
            "WHERE d.status = 'succeeded'")).scalars().all()
    return [float(r) for r in rows]


def burst(svc: Services, port: int, path: str, workdir: Path, count: int) -> dict[str, Any]:
    lines = workdir / f"burst-{uuid.uuid4().hex[:6]}.txt"
    write_requests(lines, count)
    base = counts(svc)
    load = wrk(port, path, lines, 0)
    samples = watch(svc, base[2] + count, load)
    start = _first(samples, 1, base[0] + 1)
    accepted = _first(samples, 1, base[0] + count)
    delivered = _first(samples, 3, base[2] + count)
    backlog = max(s[1] - s[3] for s in samples) - (base[1] - base[2])
    lat = latencies(svc)
    return {"ingest": count / max(accepted - start, 0.5), "e2e": count / (delivered - start),
            "drain": delivered - accepted, "backlog": backlog,
            "p50": statistics.median(lat), "p95": statistics.quantiles(lat, n=20)[18],
            "wrk": load.stdout.read() if load.stdout else ""}


def sustained(svc: Services, port: int, path: str, workdir: Path, rate: float,
              duration: float) -> dict[str, Any]:
    count = int(rate * duration)
    lines = workdir / f"paced-{uuid.uuid4().hex[:6]}.txt"
    write_requests(lines, count)
    delay = max(0, int(PACED_CONNECTIONS * 1000 / rate) - 5)
    base = counts(svc)
    load = wrk(port, path, lines, delay, PACED_CONNECTIONS)
    samples = watch(svc, base[2] + count, load)
    start = _first(samples, 1, base[0] + 1)
    accepted = _first(samples, 1, base[0] + count)
    window = [s for s in samples if start <= s[0] <= accepted]
    backlog = [s[1] - s[3] - (base[1] - base[2]) for s in window]
    return {"ingest": count / max(accepted - start, 0.5),
            "delivered": (window[-1][3] - window[0][3]) / max(window[-1][0] - window[0][0], 0.5),
            "backlog_start": backlog[len(backlog) // 4], "backlog_end": backlog[-1],
            "backlog_max": max(backlog),
            "drain": _first(samples, 3, base[2] + count) - accepted}


def reference(svc: Services, settings: Settings, url: str, count: int) -> float:
    client = Celery(broker=REDIS, backend="db+" + settings.database_url)
    client.conf.task_serializer = "json"
    ids = [client.send_task("bench.plain_post", queue="deliveries", kwargs={
        "url": url, "body": {"type": "stripe.charge.succeeded", "n": n},
        "api_key": ""}).id for n in range(count)]
    worker = start_worker(procfile_worker("tests.bench.ref_tasks", None, None), _env_now)
    try:
        done = sorted(wait_stored(svc, ids, worker=worker))
    finally:
        stop_worker(worker)
        client.close()
    return (len(done) - 1) / (done[-1] - done[0]).total_seconds()


_env_now: dict[str, str] = {}


def cpu_per_event(svc: Services, port: int, path: str, workdir: Path,
                  args: argparse.Namespace, env: dict[str, str]) -> None:
    """Worker CPU per event delivered, over a window of the drain of ``--cpu`` events
    accepted beforehand (the web app idle meanwhile, so the worker's CPU is all there
    is to attribute)."""
    lines = workdir / "cpu.txt"
    write_requests(lines, args.cpu)
    base = counts(svc)
    load = wrk(port, path, lines, 0)
    while counts(svc)[0] < base[0] + args.cpu:
        time.sleep(0.3)
    load.send_signal(signal.SIGINT)
    load.wait(30)
    worker = start_worker(procfile_worker("tasks", None, None), env)
    try:
        deadline = time.monotonic() + 120
        while counts(svc)[2] < base[2] + 100:  # warmed up: pools open, caches filled
            if time.monotonic() > deadline:
                raise SystemExit("the worker never delivered")
            time.sleep(0.2)
        procs = worker_processes(worker)
        spy = profile_worker(procs, args, "webhooks")
        cpu0, busy0 = cpu_seconds(procs), machine_busy_seconds()
        done0, started = counts(svc)[2], time.monotonic()
        time.sleep(args.cpu_window)
        cpu1, busy1 = cpu_seconds(procs), machine_busy_seconds()
        done1, elapsed = counts(svc)[2], time.monotonic() - started
        if spy is not None:
            spy.wait()
        if done1 >= base[2] + args.cpu:
            raise SystemExit("the drain ended inside the window: raise --cpu")
    finally:
        stop_worker(worker)
    events = max(done1 - done0, 1)
    print("| events in window | delivered /s | worker CPU ms per event | machine busy ms per "
          "event (cores) | load avg |\n|---|---|---|---|---|")
    print(f"| {events:,} | {events / elapsed:,.0f} | {1000 * (cpu1 - cpu0) / events:.2f} | "
          f"{1000 * (busy1 - busy0) / events:.2f} ({(busy1 - busy0) / elapsed:.2f}) | "
          f"{os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    global _env_now
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=350.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=0,
                        help="measure worker CPU per event over a drain of this many")
    parser.add_argument("--cpu-window", type=float, default=15.0)
    parser.add_argument("--profile", metavar="PREFIX",
                        help="with --cpu: py-spy's samples of a worker process")
    args = parser.parse_args()
    env = _env_now = _env()
    os.environ.update(env)
    settings = load_settings(env)
    token = prepare(settings)
    redis.Redis.from_url(REDIS).flushdb()
    svc = Services(settings, RecordingDispatcher())
    subscriber, url = start_subscriber()
    with svc.sessions() as session, session.begin():
        subscriptions.add(session, svc.vault, settings, tenant="bench", url=url + "/hooks",
                          event_types=["stripe.*"])
    port = free_port()
    web = start_gunicorn("webhooks_web:create_app()", env, port)
    path = f"/api/v1/webhooks/stripe/{token}"
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-hooks-"))
    print(f"load average at start {os.getloadavg()[0]:.1f}; worker: "
          f"`{procfile_worker('tasks', None, None)}`\n", flush=True)
    try:
        if args.cpu:
            cpu_per_event(svc, port, path, workdir, args, env)
            return
        for round_no in range(1, args.rounds + 1):
            worker = start_worker(procfile_worker("tasks", None, None), env)
            try:
                b = burst(svc, port, path, workdir, args.burst)
                rss = worker_rss_mib(worker)
                s = sustained(svc, port, path, workdir, args.rate, args.duration)
            finally:
                stop_worker(worker)
            print(f"round {round_no} (load average {os.getloadavg()[0]:.1f})\n")
            print("| burst of N | ingest /s | end to end /s | drain after last accepted s "
                  "| max backlog | p50 ms | p95 ms | worker RSS MiB |")
            print("|---|---|---|---|---|---|---|---|")
            print(f"| {args.burst:,} | {b['ingest']:,.0f} | {b['e2e']:,.0f} | "
                  f"{b['drain']:.1f} | {b['backlog']:,} | {b['p50']:,.0f} | {b['p95']:,.0f} | "
                  f"{rss} |")
            print("\n| paced, target /s | accepted /s | delivered /s | backlog at 1/4 / end / max "
                  "| drain after last accepted s |\n|---|---|---|---|---|")
            print(f"| {args.rate:,.0f} | {s['ingest']:,.0f} | {s['delivered']:,.0f} | "
                  f"{s['backlog_start']:,} / {s['backlog_end']:,} / {s['backlog_max']:,} | "
                  f"{s['drain']:.1f} |")
            ref = reference(svc, settings, url + "/hooks", args.burst)
            print(f"\nreference, same worker command: {args.burst:,} plain tasks POSTing to the "
                  f"same subscriber: {ref:,.0f} POSTs/s\n", flush=True)
    finally:
        web.terminate()
        web.wait(30)
        subscriber.terminate()
        svc.close()
        drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
