"""Outbound calls: ``hub.call`` against a plain Celery task doing the same POST, same run.

Two parts, against fake providers (tests/bench/fake_api.py, a separate asyncio
process: HTTP/1.1 keep-alive, one write per answer, TCP_NODELAY, api-key checked):

1. in-process: the same POST sent N times by a pooled ``requests.Session`` and by
   ``hub.calls.pipeline.execute_call`` after ``hub.calls.preflight.read`` (as the task
   runs them: cache off, api_key auth, quota, breaker, audit rows, events), one at a
   time; the difference is the pipeline's overhead. Wall clock and this process's
   CPU time (``time.process_time``: what the load of other processes does not change).
   Then a cacheable GET served from the cache.
2. end to end, through the worker exactly as the Procfile's ``worker:`` line starts
   it (pool, concurrency and queues from the Procfile and celeryconfig): N messages
   are queued first, then the worker is started and drains them; calls/s is
   (N - 1) / (last result stored - first result stored), read from the result
   table (``celery_taskmeta``, what a client's ``.get()`` reads). For each provider
   (instant, 200 ms) and round, the reference (``bench.plain_post``,
   tests/bench/ref_tasks.py: a plain task POSTing with requests, same worker
   command, same result backend) and ``hub.call`` run back to back, alternating
   which goes first. Then, with the worker still up, M calls are sent at a steady
   rate and their end-to-end latency (sent -> result stored) gives p50/p95.
   RSS of every worker process is read once the queue is drained.

    python tests/bench/bench_calls.py [--calls 1000] [--drain 3000] [--rounds 2]
        [--paced-rate 100] [--paced 500] [--pool threads|gevent|prefork] [-c N]
        [--soak 100000]

``--soak N`` instead sends N ``hub.call`` to the instant provider through one
worker and prints the worker's RSS every N/10 calls (memory growth per call).
``--cpu N`` instead measures the worker's CPU per call (all its processes, user +
system) over ``--cpu-window`` seconds of a drain of N queued calls, plain task and
hub.call alternately, twice (HUB_WORKER_PROCESSES=1 for one process); ``--profile PREFIX``
adds py-spy's samples of one worker process per window (collapsed stacks, to files).
Uses its own database (hub_bench_calls, or $HUB_BENCH_CALLS_DB) and Redis db 11 (or
$HUB_BENCH_CALLS_REDIS_URL); needs local PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.calls import integrations, preflight
from hub.calls.integrations import IntegrationSpec
from hub.calls.pipeline import CallRequest, execute_call
from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import QUEUE_NAMES, load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_CALLS_REDIS_URL", "redis://127.0.0.1:6379/11")
DB = os.environ.get("HUB_BENCH_CALLS_DB", "hub_bench_calls")
#: The broker of the worker and the client: Redis (the default) or, to compare,
#: RabbitMQ (``amqp://guest:guest@127.0.0.1:5672//``: the bench's quorum queues are
#: named ``benchcalls-*`` and deleted at the end).
BROKER = os.environ.get("HUB_BENCH_BROKER_URL", REDIS)
QUEUE_PREFIX = "" if BROKER.startswith("redis") else "benchcalls-"
CALLS_QUEUE = QUEUE_PREFIX + "calls"
KEY = Fernet.generate_key().decode()
API_KEY = "ak_bench_" + uuid.uuid4().hex
BODY = {"n": 1, "note": "bench"}


def _env(extra: dict[str, str]) -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=BROKER, HUB_QUEUE_PREFIX=QUEUE_PREFIX, HUB_ENCRYPTION_KEYS=KEY, HUB_REDIS_PREFIX="benchcalls:",
                HUB_ALLOW_PRIVATE_NETWORKS="1", HUB_LOG_LEVEL="WARNING", **extra)


# --- processes ------------------------------------------------------------------------

def start_fake(delay: float) -> tuple[subprocess.Popen[str], str]:
    """A fake provider process answering after ``delay`` seconds; its base URL."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/bench/fake_api.py"),
                             "--delay", str(delay), "--api-key", API_KEY],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}"


def procfile_worker(app: str, pool: str | None, concurrency: int | None) -> str:
    """The Procfile's ``worker:`` command (``hub worker``: one process per core), its
    workers' app ``app`` (the hub's tasks, plus the reference task for the bench's)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            command = line.split(":", 1)[1].strip()
            if app != "tasks":
                command = command.replace("hub worker ", f"hub worker -A {app} ")
            break
    else:
        raise SystemExit("no worker: line in the Procfile")
    if pool:
        command += f" --pool {pool}"
    if concurrency:
        command += f" --concurrency {concurrency}"
    # At the Procfile's log level (one INFO line per task); its output goes to a file.
    return command + " --without-gossip --without-mingle"


WORKER_LOG = Path(os.environ.get("HUB_BENCH_WORKER_LOG", "/tmp/hub-bench-worker.log"))


def start_worker(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(WORKER_LOG, "ab") as log:
        return subprocess.Popen(command, shell=True, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker command and wait until every process of it is gone (the shell
    may exit before the workers: a worker of one phase must not take messages of the
    next)."""
    if proc.poll() is None:
        try:
            procs = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            procs = []
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        _gone, alive = psutil.wait_procs(procs, timeout=90)
        for left in alive:
            left.kill()


def worker_processes(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The Celery worker processes under the shell (not ``hub worker`` itself)."""
    try:
        procs = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in procs if any(Path(a).name == "celery" for a in p.cmdline()[:3])]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU (user + system) the processes ``procs`` used so far, seconds."""
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def worker_rss_mib(proc: subprocess.Popen[bytes]) -> list[float]:
    """RSS of every Celery worker process (one per core under ``hub worker``)."""
    return [round(p.memory_info().rss / 2**20, 1) for p in worker_processes(proc)]


# --- measuring --------------------------------------------------------------------------

def stored(svc: Services, ids: list[str]) -> tuple[int, int, list[Any]]:
    """(successes, failures, date_done of the successes) of the tasks ``ids``."""
    with svc.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT task_id, status, date_done FROM celery_taskmeta WHERE task_id = ANY(:ids)"),
            {"ids": ids}).all()
    done = [r.date_done for r in rows if r.status == "SUCCESS"]
    failed = [r for r in rows if r.status == "FAILURE"]
    if failed:
        with svc.engine.connect() as conn:
            print("failed:", conn.execute(text(
                "SELECT task_id, result, traceback FROM celery_taskmeta WHERE task_id = :id"),
                {"id": failed[0].task_id}).one(), file=sys.stderr)
    return len(done), len(failed), done


def wait_stored(svc: Services, ids: list[str], timeout: float = 600,
                worker: subprocess.Popen[bytes] | None = None) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        if worker is not None and worker.poll() is not None:
            raise SystemExit(f"the worker exited with status {worker.returncode}")
        ok, failed, done = stored(svc, ids)
        if failed:
            raise SystemExit(f"{failed} of {len(ids)} tasks failed")
        if ok >= len(ids):
            return done
        if time.monotonic() > deadline:
            raise SystemExit(f"only {ok} of {len(ids)} results stored in {timeout:.0f} s")
        time.sleep(0.1)


def _pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


Sender = Callable[[], str]


def senders(client: Celery, tenant: str, provider: str) -> dict[str, Sender]:
    hub_kwargs = {"tenant": tenant, "integration": provider, "operation": "post",
                  "params": {"path": "/v1/objects", "json": BODY}}
    urls = {"instant": INSTANT_URL, "200ms": SLOW_URL}

    def plain() -> str:
        return client.send_task("bench.plain_post", kwargs={
            "url": urls[provider] + "/v1/objects", "body": BODY, "api_key": API_KEY},
            queue=CALLS_QUEUE).id

    def hub() -> str:
        return client.send_task("hub.call", kwargs=hub_kwargs, queue=CALLS_QUEUE).id

    return {"plain task": plain, "hub.call": hub}


INSTANT_URL = SLOW_URL = ""


def drain(svc: Services, command: str, env: dict[str, str], send: Sender, count: int,
          paced_rate: float, paced: int) -> dict[str, Any]:
    """Queue ``count`` messages, start the worker, time the drain; then a paced run."""
    ids = [send() for _ in range(count)]
    load = os.getloadavg()[0]
    worker = start_worker(command, env)
    try:
        done = sorted(wait_stored(svc, ids, worker=worker))
        rate = (len(done) - 1) / max((done[-1] - done[0]).total_seconds(), 1e-9)
        rss = worker_rss_mib(worker)
        latencies = paced_latencies(svc, send, paced_rate, paced)
    finally:
        stop_worker(worker)
    return {"rate": rate, "p50": _pct(latencies, 50), "p95": _pct(latencies, 95),
            "rss": rss, "load": (load, os.getloadavg()[0])}


def paced_latencies(svc: Services, send: Sender, rate: float, count: int) -> list[float]:
    sent: dict[str, float] = {}
    started = time.monotonic()
    for n in range(count):
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        task_id = send()
        sent[task_id] = time.time()
    ids = list(sent)
    wait_stored(svc, ids)
    with svc.engine.connect() as conn:
        rows = conn.execute(text("SELECT task_id, date_done FROM celery_taskmeta "
                                 "WHERE task_id = ANY(:ids)"), {"ids": ids}).all()
    return [(r.date_done.replace(tzinfo=UTC).timestamp() - sent[r.task_id]) * 1000
            for r in rows]


# --- in-process overhead ----------------------------------------------------------------

CPU_MS: dict[str, list[float]] = {}


def _timed(func: Callable[[], None], n: int) -> list[float]:
    samples, cpu = [], CPU_MS.setdefault(func.__name__, [])
    for _ in range(n):
        started, started_cpu = time.perf_counter(), time.process_time()
        func()
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return samples


def _row(name: str, samples: list[float]) -> str:
    return (f"| {name} | {statistics.mean(samples):.2f} | {_pct(samples, 50):.2f} | "
            f"{_pct(samples, 95):.2f} |")


def in_process(svc: Services, tenant: str, calls: int) -> None:
    direct = requests.Session()
    post = CallRequest(tenant, "instant", "post", {"path": "/v1/objects", "json": BODY})
    get = CallRequest(tenant, "instant", "get", {"path": "/v1/objects/1"})

    def raw() -> None:
        response = direct.post(INSTANT_URL + "/v1/objects", json=BODY,
                               headers={"X-Api-Key": API_KEY}, timeout=5)
        response.raise_for_status()
        response.json()

    def hub_call() -> None:
        # As the task runs it: the pre-call reads in one round trip, then the pipeline.
        read = preflight.read(svc, tenant, "instant")
        outcome = execute_call(svc, post, preflight=read)
        assert outcome.status == "success", outcome

    def cached() -> None:
        outcome = execute_call(svc, get)
        assert outcome.result and outcome.result["cached"], outcome

    for warm in (raw, hub_call):
        _timed(warm, 50)  # warm-up: pools, sessions, prepared statements
    CPU_MS.clear()
    assert execute_call(svc, get).status == "success"
    rounds = [(_timed(raw, calls // 2), _timed(hub_call, calls // 2)) for _ in range(2)]
    direct_ms = rounds[0][0] + rounds[1][0]
    hub_ms = rounds[0][1] + rounds[1][1]
    cached_ms = _timed(cached, calls)
    print(f"load average {os.getloadavg()[0]:.1f}\n")
    print("| in-process (ms per call) | mean | p50 | p95 |\n|---|---|---|---|")
    print(_row("direct requests POST", direct_ms))
    print(_row("hub execute_call POST (cache off)", hub_ms))
    print(_row("hub execute_call GET served from cache", cached_ms))
    print(f"\noverhead of the pipeline per call: mean "
          f"{statistics.mean(hub_ms) - statistics.mean(direct_ms):.2f} ms, p50 "
          f"{_pct(hub_ms, 50) - _pct(direct_ms, 50):.2f} ms")
    print(f"this process's CPU per call (time.process_time, mean): direct "
          f"{statistics.mean(CPU_MS['raw']):.2f} ms, hub "
          f"{statistics.mean(CPU_MS['hub_call']):.2f} ms, overhead "
          f"{statistics.mean(CPU_MS['hub_call']) - statistics.mean(CPU_MS['raw']):.2f} ms\n",
          flush=True)


# --- main -------------------------------------------------------------------------------

def _setup(svc: Services) -> str:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    with svc.sessions() as session, session.begin():
        for name, url in (("instant", INSTANT_URL), ("200ms", SLOW_URL)):
            integrations.create(session, IntegrationSpec(
                tenant_id=tenant, name=name, adapter="rest", base_url=url,
                auth_type="api_key", config={"cache_ttl": 3600}))
            integrations.set_credentials(session, svc.vault, tenant, name,
                                         {"api_key": API_KEY})
    return tenant


def end_to_end(svc: Services, client: Celery, tenant: str, args: argparse.Namespace,
               env: dict[str, str]) -> None:
    # One command for both: the hub's app plus the reference task (a message of one
    # target left unacknowledged at a worker's stop is then run, not refused, by the next).
    command = procfile_worker("tests.bench.ref_tasks", args.pool, args.c)
    print(f"worker: `{command}`\n")
    print("| round | provider | target | calls/s | hub / plain | p50 ms | p95 ms "
          "| RSS MiB per worker process | load avg start/end |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for round_no in range(1, args.rounds + 1):
        for provider in ("instant", "200ms"):
            order = ["plain task", "hub.call"]
            if round_no % 2 == 0:
                order.reverse()
            figures: dict[str, dict[str, Any]] = {}
            for target in order:
                send = senders(client, tenant, provider)[target]
                figures[target] = drain(svc, command, env, send, args.drain,
                                        args.paced_rate, args.paced)
            for target in ("plain task", "hub.call"):
                f = figures[target]
                ratio = (f"{100 * f['rate'] / figures['plain task']['rate']:.0f} %"
                         if target == "hub.call" else "")
                print(f"| {round_no} | {provider} | {target} | {f['rate']:,.0f} | {ratio} | "
                      f"{f['p50']:.1f} | {f['p95']:.1f} | {f['rss']} | "
                      f"{f['load'][0]:.1f} / {f['load'][1]:.1f} |", flush=True)


def soak(svc: Services, client: Celery, tenant: str, args: argparse.Namespace,
         env: dict[str, str]) -> None:
    command = procfile_worker("tasks", args.pool, args.c)
    send = senders(client, tenant, "instant")["hub.call"]
    worker = start_worker(command, env)
    step = args.soak // 10
    print(f"worker: `{command}`\n\n| calls | RSS MiB per worker process | load avg |\n|---|---|---|")
    try:
        for n in range(1, 11):
            wait_stored(svc, [send() for _ in range(step)], timeout=1800, worker=worker)
            print(f"| {n * step:,} | {worker_rss_mib(worker)} | {os.getloadavg()[0]:.1f} |",
                  flush=True)
    finally:
        stop_worker(worker)


def cpu_per_call(svc: Services, client: Celery, tenant: str, args: argparse.Namespace,
                 env: dict[str, str]) -> None:
    """Worker CPU per call (user + system of every worker process, psutil) over a
    window of a drain of ``--cpu`` queued calls to the instant provider, plain task and
    hub.call alternately, twice: what the machine's load changes least."""
    command = procfile_worker("tests.bench.ref_tasks", args.pool, args.c)
    print(f"worker: `{command}` (HUB_WORKER_PROCESSES={env.get('HUB_WORKER_PROCESSES', '')})"
          "\n\n| target | calls in window | calls/s | worker CPU ms per call | load avg |"
          "\n|---|---|---|---|---|")
    for target in ("plain task", "hub.call") * 2:
        send = senders(client, tenant, "instant")[target]
        ids = [send() for _ in range(args.cpu)]
        worker = start_worker(command, env)
        try:
            deadline = time.monotonic() + 120
            while stored(svc, ids[:100])[0] < 50:  # warmed up: pools open, caches filled
                if time.monotonic() > deadline:
                    raise SystemExit("the worker never started storing results")
                time.sleep(0.2)
            procs = worker_processes(worker)
            spy = profile_worker(procs, args, target)
            cpu0 = cpu_seconds(procs)
            done0, started = stored(svc, ids)[0], time.monotonic()
            time.sleep(args.cpu_window)
            cpu1 = cpu_seconds(procs)
            done1, elapsed = stored(svc, ids)[0], time.monotonic() - started
            if spy is not None:
                spy.wait()
            if done1 >= len(ids):
                raise SystemExit("the drain ended inside the window: raise --cpu")
        finally:
            stop_worker(worker)
        calls = done1 - done0
        print(f"| {target} | {calls:,} | {calls / elapsed:,.0f} | "
              f"{1000 * (cpu1 - cpu0) / max(calls, 1):.2f} | {os.getloadavg()[0]:.1f} |",
              flush=True)


def profile_worker(procs: list[psutil.Process], args: argparse.Namespace,
                   target: str) -> subprocess.Popen[bytes] | None:
    """With ``--profile PREFIX``: py-spy samples the first worker process over the
    window (raw collapsed stacks, PREFIX-<target>-<pid>.txt), only the thread holding
    the GIL (``--gil``): where the CPU goes, not where 64 threads wait for it."""
    if not args.profile or not procs:
        return None
    out = f"{args.profile}-{target.replace(' ', '_')}-{procs[0].pid}.txt"
    return subprocess.Popen(["py-spy", "record", "--nonblocking", "--gil", "--format", "raw",
                             "-r", "250", "-d", str(int(args.cpu_window)), "-o", out,
                             "-p", str(procs[0].pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main() -> None:
    global INSTANT_URL, SLOW_URL
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--drain", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paced-rate", type=float, default=100.0)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--pool", choices=("threads", "gevent", "prefork", "solo"))
    parser.add_argument("-c", type=int, help="worker concurrency (default: the hub's)")
    parser.add_argument("--soak", type=int, default=0)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--cpu", type=int, default=0,
                        help="instead: worker CPU per call over a drain of this many calls")
    parser.add_argument("--cpu-window", type=float, default=10.0)
    parser.add_argument("--profile", metavar="PREFIX",
                        help="with --cpu: py-spy's samples of a worker process per window")
    args = parser.parse_args()
    env = _env({"HUB_WORKER_POOL": args.pool} if args.pool else {})
    os.environ.update(env)
    create_database(SERVER, DB)
    settings = load_settings(env)
    migrate.upgrade(settings)
    redis.Redis.from_url(REDIS).flushdb()
    svc = Services(settings, RecordingDispatcher())
    fast, INSTANT_URL = start_fake(0.0)
    slow, SLOW_URL = start_fake(0.2)
    client = Celery(broker=BROKER, backend="db+" + settings.database_url)
    client.conf.task_serializer = "json"
    if QUEUE_PREFIX:  # a client of a RabbitMQ hub, as README says
        client.conf.task_default_queue_type = "quorum"
        client.conf.task_create_missing_queue_type = "quorum"
        client.conf.task_default_exchange_type = "topic"
    try:
        tenant = _setup(svc)
        if args.soak:
            soak(svc, client, tenant, args, env)
            return
        if args.cpu:
            cpu_per_call(svc, client, tenant, args, env)
            return
        if not args.skip_in_process:
            in_process(svc, tenant, args.calls)
        end_to_end(svc, client, tenant, args, env)
    finally:
        for proc in (fast, slow):
            proc.terminate()
        if QUEUE_PREFIX:
            _delete_queues(client)
        client.close()
        svc.close()
        drop_database(SERVER, DB)


def _delete_queues(client: Celery) -> None:
    """Delete the bench's queues and exchanges from RabbitMQ (they would outlive it)."""
    with client.connection_for_write() as conn:
        channel = conn.default_channel
        deletions = [(channel.queue_delete, name) for name in (*QUEUE_NAMES, "celery")]
        deletions += [(channel.exchange_delete, name) for name in (*QUEUE_NAMES, "celery", "hub")]
        for delete, name in deletions:
            try:
                delete(QUEUE_PREFIX + name)
            except Exception as exc:  # noqa: BLE001 - one missing must not stop the rest
                print(f"{QUEUE_PREFIX + name} not deleted: {exc}", file=sys.stderr)
                channel = conn.channel()


if __name__ == "__main__":
    main()
