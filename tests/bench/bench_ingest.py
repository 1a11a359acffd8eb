"""Sustained webhook ingest through gunicorn: the hub versus two references.

    python tests/bench/bench_ingest.py [--duration 30] [--connections 32] [--rounds 2]

Three targets, one after the other, under the same gunicorn config
(webhooks_web/gunicorn.conf.py: WEB_CONCURRENCY workers of WEB_WORKER_CLASS) and the same wrk load
(tests/bench/post.lua: every request a distinct, freshly signed Stripe event):

* ``bare``: a Flask endpoint answering 202 (HTTP ceiling);
* ``raw``: one INSERT of the body + one Redis LPUSH per request (durable ceiling), on
  the same engine and driver path as the hub's event store;
* ``hub``: ``webhooks_web:create_app()`` - endpoint lookup (cached), Stripe signature,
  JSON parse, INSERT ... ON CONFLICT into webhook_events (committed), Celery task
  message LPUSH; concurrent requests of one process share the INSERT and the LPUSH
  (hub.platform.groupcommit).

Run it with the defaults (gunicorn.conf.py: gevent workers), with ``--worker-class
gthread`` (16 threads per worker, the default before issue 9) and with
``--worker-class sync --workers 8`` (one request per process, where the raw reference
does best and the hub cannot batch).

Reports accepted/s, p50/p90/p99 latency, and for the durable targets the rows stored
against the 2xx answers (stored may exceed answered only by requests in flight when
wrk stopped; it must never be lower). Uses its own database ``hub_bench`` and Redis
database 12 on the local servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
import stripe
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.dev.embedded import create_database, drop_database, free_port, libpq_url
from hub.platform import migrate
from hub.platform.config import Settings, load_settings
from hub.platform.db import transaction
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from hub.webhooks import endpoints

SECRET = "whsec_bench_secret"
APPS = {
    "bare": "tests.bench.ref_apps:bare_app()",
    "raw": "tests.bench.ref_apps:raw_app()",
    "hub": "webhooks_web:create_app()",
    # diagnosis only: the hub without its enqueue
    "hub-no-enqueue": "tests.bench.ref_apps:hub_without_enqueue_app()",
}


@dataclass
class Result:
    target: str
    rate: float
    ok: int
    other: int
    errors: int
    wrapped: int
    p50: float
    p90: float
    p99: float
    stored: int | None
    cpu_ms: float | None  # gunicorn workers' CPU per accepted request (load-independent)
    pg_cpu_ms: float | None  # PostgreSQL's CPU (all its processes) per accepted request
    machine_cpu_ms: float | None  # every process on the machine (wrk, Redis, ...) likewise


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(
        os.environ,
        HUB_DATABASE_URL=args.database_url, HUB_REDIS_URL=args.redis_url,
        HUB_BROKER_URL=args.redis_url, HUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        HUB_QUEUE_PREFIX="bench.", HUB_REDIS_PREFIX="hubbench:", HUB_LOG_LEVEL="WARNING",
        WEB_CONCURRENCY=str(args.workers), WEB_WORKER_CLASS=args.worker_class,
        WEB_THREADS=str(args.threads))


def gunicorn_defaults() -> dict[str, Any]:
    """Workers, worker class and threads as webhooks_web/gunicorn.conf.py sets them here."""
    conf = runpy.run_path(str(ROOT / "webhooks_web/gunicorn.conf.py"))
    return {"workers": conf["workers"], "worker_class": conf["worker_class"],
            "threads": int(os.environ.get("WEB_THREADS", "16"))}


def prepare(settings: Settings, *, drop_endpoint_fk: bool = False) -> str:
    """Fresh hub_bench database at head, the raw table, one Stripe endpoint; its token.

    ``drop_endpoint_fk``: experiment only - measures what the foreign key from
    webhook_events to webhook_endpoints costs (every insert KEY SHARE-locks the
    endpoint row, so concurrent inserts for one endpoint share it via multixacts).
    """
    name = settings.database_url.rsplit("/", 1)[1]
    drop_database(settings.database_url, name)
    create_database(settings.database_url, name)
    migrate.upgrade(settings)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                     "body bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now())")
        if drop_endpoint_fk:
            conn.execute("ALTER TABLE webhook_events DROP CONSTRAINT "
                         "fk_webhook_events_endpoint_id_webhook_endpoints")
    services = Services(settings, RecordingDispatcher())
    try:
        spec = endpoints.EndpointSpec(tenant="bench", source="stripe", scheme="stripe",
                                      secrets=[SECRET])
        with transaction(services.sessions) as session:
            return endpoints.create(session, services.vault, settings, spec).token
    finally:
        services.close()


def write_requests(path: Path, count: int) -> None:
    """``count`` distinct Stripe events, signed now, as "<signature>\\t<body>" lines."""
    now = int(time.time())
    with path.open("w") as out:
        for _ in range(count):
            body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "charge.succeeded",
                               "object": "event", "data": {"object": {
                                   "id": f"ch_{uuid.uuid4().hex[:24]}", "amount": 4200,
                                   "currency": "eur", "status": "succeeded"}}})
            header = stripe.WebhookSignature.generate_signature_header(body, SECRET, now)
            out.write(f"{header}\t{body}\n")


def cpu_snapshot(proc: subprocess.Popen[bytes]) -> dict[str, float] | None:
    """CPU seconds used so far: the gunicorn workers (children of the master), every
    PostgreSQL process, and the whole machine (busy time of all cores)."""
    try:
        import psutil
    except ImportError:
        return None

    def used(p: psutil.Process) -> float:
        try:
            times = p.cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    postgres = {p.pid: used(p) for p in psutil.process_iter(["name"])
                if p.info["name"] == "postgres"}
    return {"workers": sum(used(c) for c in psutil.Process(proc.pid).children()),
            "postgres": postgres,  # type: ignore[dict-item]
            "machine": machine_busy_seconds()}


def machine_busy_seconds() -> float:
    """Busy time of all the machine's cores so far (not idle, not waiting for I/O)."""
    import psutil

    machine = psutil.cpu_times()
    return float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0))


def cpu_per_request(before: dict | None, after: dict | None, ok: int) -> dict[str, float | None]:
    """Milliseconds of CPU per accepted request, by consumer, between two snapshots."""
    if before is None or after is None:
        return {"workers": None, "postgres": None, "machine": None}
    # Backends that started during the run count from zero; ones that ended are lost
    # (the pools keep theirs open for the whole run).
    postgres = sum(t - before["postgres"].get(pid, 0.0) for pid, t in after["postgres"].items())
    per = 1000 / max(ok, 1)
    return {"workers": (after["workers"] - before["workers"]) * per,
            "postgres": postgres * per, "machine": (after["machine"] - before["machine"]) * per}


def stored(settings: Settings, target: str) -> int | None:
    table = {"raw": "bench_raw", "hub": "webhook_events",
             "hub-no-enqueue": "webhook_events"}.get(target)
    if table is None:
        return None
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def start_gunicorn(app: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    metrics_dir = tempfile.mkdtemp(prefix="hub-bench-metrics-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "webhooks_web/gunicorn.conf.py", app],
        cwd=ROOT, env=dict(env, PORT=str(port), PROMETHEUS_MULTIPROC_DIR=metrics_dir))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"{app} did not start")


def wrk(port: int, path: str, lines: Path, args: argparse.Namespace,
        duration: int) -> dict[str, float]:
    env = dict(os.environ, BENCH_REQUESTS=str(lines), BENCH_PATH=path,
               BENCH_THREADS=str(args.wrk_threads))
    out = subprocess.run(
        ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{duration}s",
         "--timeout", "10s", "--latency", "-s", str(ROOT / "tests/bench/post.lua"),
         f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True, check=True).stdout
    found = {k: float(v) for k, v in re.findall(r"BENCH (\w+)=([\d.]+)", out)}
    found.update({k: float(v) for k, v in re.findall(r"BENCH .*?(\w+)=(\d+)", out)})
    found["rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for key in ("ok", "other", "wrapped", "requests", "errors"):
        found[key] = float(re.search(rf"{key}=(\d+)", out).group(1))
    return found


def run(target: str, settings: Settings, env: dict[str, str], token: str,
        args: argparse.Namespace, workdir: Path) -> Result:
    port = free_port()
    path = f"/api/v1/webhooks/stripe/{token}"
    per_run = int(args.max_rate * args.duration)
    proc = start_gunicorn(APPS[target], env, port)
    try:
        write_requests(workdir / "warm.txt", int(args.max_rate * args.warmup))
        wrk(port, path, workdir / "warm.txt", args, args.warmup)
        write_requests(workdir / "run.txt", per_run)
        before, cpu_before = stored(settings, target), cpu_snapshot(proc)
        found = wrk(port, path, workdir / "run.txt", args, args.duration)
        time.sleep(1)  # let requests in flight when wrk stopped finish before counting
        after, cpu_after = stored(settings, target), cpu_snapshot(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cpu = cpu_per_request(cpu_before, cpu_after, int(found["ok"]))
    return Result(target, found["ok"] / args.duration, int(found["ok"]), int(found["other"]),
                  int(found["errors"]), int(found["wrapped"]), found["p50"], found["p90"],
                  found["p99"], None if before is None else after - before,
                  cpu["workers"], cpu["postgres"], cpu["machine"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [("| target | accepted/s | p50 ms | p90 ms | p99 ms | 2xx | non-2xx | "
              "socket errors | stored | CPU ms/req: workers | PostgreSQL | machine |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.target} | {r.rate:.0f} | {r.p50:.1f} | {r.p90:.1f} | {r.p99:.1f} | "
                     f"{r.ok} | {r.other} | {r.errors} | "
                     f"{'-' if r.stored is None else r.stored} | "
                 f"{_ms(r.cpu_ms)} | {_ms(r.pg_cpu_ms)} | {_ms(r.machine_cpu_ms)} |")
    best = {t: max(r.rate for r in results if r.target == t) for t in {r.target for r in results}}
    med = {t: statistics.median(r.rate for r in results if r.target == t) for t in best}
    lines.append("")
    lines.append(f"best: bare {best.get('bare', 0):.0f}/s, raw {best.get('raw', 0):.0f}/s, "
                 f"hub {best.get('hub', 0):.0f}/s; hub/raw = "
                 f"{best.get('hub', 0) / max(best.get('raw', 1), 1):.0%} (best), "
                 f"{med.get('hub', 0) / max(med.get('raw', 1), 1):.0%} (median)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    defaults = gunicorn_defaults()
    parser.add_argument("--workers", type=int, default=defaults["workers"],
                        help="WEB_CONCURRENCY (default: webhooks_web/gunicorn.conf.py's)")
    parser.add_argument("--worker-class", default=defaults["worker_class"],
                        help="WEB_WORKER_CLASS: gevent, gthread or sync "
                             "(default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=defaults["threads"],
                        help="WEB_THREADS, for gthread (raw's pool size for any class)")
    parser.add_argument("--max-rate", type=int, default=3000,
                        help="Distinct requests generated per second of run (no repeats).")
    parser.add_argument("--targets", default="bare,raw,hub")
    parser.add_argument("--drop-endpoint-fk", action="store_true",
                        help="Experiment: drop webhook_events' foreign key to its endpoint.")
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/hub_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds through the finally blocks that stop gunicorn.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    env = bench_env(args)
    settings = load_settings(env)
    token = prepare(settings, drop_endpoint_fk=args.drop_endpoint_fk)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.rounds):
            for target in args.targets.split(","):
                result = run(target, settings, env, token, args, Path(workdir))
                print(result, flush=True)
                results.append(result)
    redis.Redis.from_url(args.redis_url).flushdb()
    print(f"\n{os.cpu_count()} cores; gunicorn {args.workers} {args.worker_class} workers "
          f"(threads {args.threads}); "
          f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s\n")
    print(report(results, args))


if __name__ == "__main__":
    main()
