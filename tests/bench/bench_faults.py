"""Fault benchmark: webhooks sent through the whole hub while one dependency fails.

A hub of its own (PostgreSQL cluster and redis-server started here, run as the
recipes run them: AOF everysec, noeviction; gunicorn web, a prefork worker -c 2,
two beats) receives EVENTS provider webhooks at RATE/s, each retried by the
"provider" until it gets a 2xx, and fans each out to one subscriber (a local
server recording every webhook-id). FAULT_AT seconds into the send one fault is
injected, by PID:

    worker-kill    kill -9 of the whole worker (a new one starts, as systemd would)
    redis-restart  kill -9 of redis-server, started again 3 s later (AOF kept)
    redis-flushall FLUSHALL
    postgres-crash kill -9 of the postmaster and its backends, started again 3 s later
    beat-kill      kill -9 of the active beat (the standby takes over)
    none           no fault: the same-run reference for the time to settle

Counted per scenario: events sent, answered 2xx, lost (answered but never delivered),
processed twice (an event delivered under two webhook-ids), duplicates delivered
(the same webhook-id received again), and the time to settle (from the fault until
every answered event is delivered).

    python tests/bench/bench_faults.py [--events 600] [--rate 40] [--scenario NAME]...
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.deliveries import subscriptions
from hub.dev.embedded import create_database, free_port, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from hub.webhooks import endpoints
from tests.faults.beat import BeatProcess
from tests.faults.servers import PostgresCluster, RedisServer

SCENARIOS = ("none", "worker-kill", "redis-restart", "redis-flushall", "postgres-crash", "beat-kill")
SETTLE_LIMIT = 420.0


class Subscriber(BaseHTTPRequestHandler):
    """Records (webhook-id, event id) of every delivery; answers 204."""

    disable_nagle_algorithm = True
    received: typing.ClassVar[list[tuple[str, str, float]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.received.append((self.headers["webhook-id"], body["external_id"],
                                  time.monotonic()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def subscriber() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Subscriber)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks"
    finally:
        server.shutdown()


class Hub:
    """PostgreSQL, Redis, web, worker and two beats of one scenario."""

    def __init__(self, workdir: Path) -> None:
        self.pg, self.redis = PostgresCluster(), RedisServer(persistent=True)
        self.pg.init()
        self.pg.start()
        self.redis.start()
        create_database(self.pg.url, "hub")
        self.port = free_port()
        self.env = {**os.environ, "HUB_DATABASE_URL": with_database(self.pg.url, "hub"),
                    "HUB_REDIS_URL": self.redis.url, "HUB_BROKER_URL": self.redis.url,
                    "HUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                    "HUB_ALLOW_PRIVATE_NETWORKS": "1", "HUB_LOG_LEVEL": "WARNING",
                    "HUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "HUB_QUEUE_PREFIX": ""}
        self.settings = load_settings(self.env)
        migrate.upgrade(self.settings)
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.beats: list[BeatProcess] = []

    def spawn(self, name: str, *cmd: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept by the child
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *cmd], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=log,
                                            start_new_session=True)

    def start(self) -> None:
        self.spawn("web", "gunicorn", "-c", "webhooks_web/gunicorn.conf.py", "--bind",
                   f"127.0.0.1:{self.port}", "webhooks_web:create_app()")
        self.start_worker()
        env = {k: v for k, v in self.env.items() if k.startswith("HUB_")}
        self.beats = [BeatProcess(self.redis.url, env=env) for _ in range(2)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("web did not start")

    def start_worker(self) -> None:
        self.spawn("worker", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "2",
                   "-l", "WARNING", "--without-gossip", "--without-mingle")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def prepare(self, url: str) -> str:
        services = Services(self.settings, RecordingDispatcher())
        try:
            with services.sessions() as session, session.begin():
                subscriptions.add(session, services.vault, self.settings, tenant="acme", url=url)
                created = endpoints.create(session, services.vault, self.settings,
                                           endpoints.EndpointSpec("acme", "stripe", "none"))
            return created.url
        finally:
            services.close()

    def close(self) -> None:
        for beat in self.beats:
            beat.kill()
        for name in list(self.procs):
            self.kill(name)
        self.redis.close()
        self.pg.close()


def inject(hub: Hub, scenario: str) -> None:
    if scenario == "none":
        return
    if scenario == "worker-kill":
        hub.kill("worker")
        hub.start_worker()
    elif scenario == "redis-restart":
        hub.redis.stop(signal.SIGKILL)
        time.sleep(3)
        hub.redis.start()
    elif scenario == "redis-flushall":
        hub.redis.flushall()
    elif scenario == "postgres-crash":
        hub.pg.crash()
        time.sleep(3)
        hub.pg.start()
    elif scenario == "beat-kill":
        active = next(b for b in hub.beats if b.active())
        active.kill()


def send_all(url: str, events: int, rate: float, at_fault: Callable[[], None],
             fault_at: float) -> tuple[int, float]:
    """POST every event, retrying each until 2xx (as providers do); return (answered,
    the monotonic time of the fault)."""
    pending = collections.deque(range(events))
    session = requests.Session()
    started, fault_time, answered = time.monotonic(), 0.0, 0
    deadline = started + events / rate + 180
    sent = 0
    while pending and time.monotonic() < deadline:
        if not fault_time and time.monotonic() - started >= fault_at:
            fault_time = time.monotonic()
            threading.Thread(target=at_fault, daemon=True).start()
        n = pending.popleft()
        body = json.dumps({"id": f"evt_{n}", "type": "invoice.paid", "n": n})
        try:
            ok = session.post(url, data=body, timeout=5,
                              headers={"content-type": "application/json"}).status_code < 300
        except requests.RequestException:
            ok = False
        if ok:
            answered += 1
        else:
            pending.append(n)
            time.sleep(0.05)
        sent += 1
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    return answered, fault_time


def run(scenario: str, events: int, rate: float, fault_at: float, workdir: Path) -> dict:
    Subscriber.received = []
    hub = Hub(workdir)
    try:
        hub.start()
        with subscriber() as url:
            endpoint = hub.prepare(url)
            answered, fault_time = send_all(endpoint, events, rate,
                                            lambda: inject(hub, scenario), fault_at)
            deadline = time.monotonic() + SETTLE_LIMIT
            while time.monotonic() < deadline:
                if len({e for _w, e, _t in Subscriber.received}) >= answered:
                    break
                time.sleep(0.5)
            received = list(Subscriber.received)
    finally:
        hub.close()
    ids_per_event: dict[str, set[str]] = collections.defaultdict(set)
    for webhook_id, external_id, _t in received:
        ids_per_event[external_id].add(webhook_id)
    delivered = len(ids_per_event)
    settle = max((t for _w, _e, t in received), default=fault_time) - fault_time
    return {"scenario": scenario, "sent": events, "answered": answered,
            "lost": answered - delivered,
            "processed_twice": sum(1 for ids in ids_per_event.values() if len(ids) > 1),
            "duplicates_delivered": len(received) - sum(len(v) for v in ids_per_event.values()),
            "settle_s": round(settle, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--fault-at", type=float, default=5.0)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hub-bench-faults-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    print("| scenario | events sent | answered | lost | processed twice "
          "| duplicates delivered | time to settle |")
    print("|---|---|---|---|---|---|---|")
    for scenario in args.scenario or SCENARIOS:
        r = run(scenario, args.events, args.rate, args.fault_at, workdir)
        print(f"| {r['scenario']} | {r['sent']} | {r['answered']} | {r['lost']} | "
              f"{r['processed_twice']} | {r['duplicates_delivered']} | {r['settle_s']} s |",
              flush=True)
    print(f"(process logs in {workdir})")


if __name__ == "__main__":
    main()
