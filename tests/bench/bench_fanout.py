"""Webhook processing and signed fan-out throughput through a real prefork worker (-c 2).

N recorded events (inserted as the intake would, status pending) are enqueued as
``hub.webhooks.process``; the worker claims each one, creates a delivery per
matching subscription and sends ``hub.deliveries.send``, which POSTs the signed
event to a local subscriber (a ThreadingHTTPServer answering 204). Measured
until PostgreSQL says every event is processed and every delivery succeeded.
Two runs: no subscription (processing only) and one subscription (process +
signed delivery). Prints a Markdown table.

    python tests/bench/bench_fanout.py [--events 2000]

Uses its own database (hub_bench_fanout), Redis db 9 and queue prefix; needs
local PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.deliveries import subscriptions
from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import Delivery, WebhookEndpoint, WebhookEvent
from hub.platform.services import Services

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_FANOUT_REDIS_URL", "redis://127.0.0.1:6379/9")
DB = "hub_bench_fanout"
PREFIX = "benchfan."
KEY = Fernet.generate_key().decode()


def _env() -> dict[str, str]:
    return dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                HUB_BROKER_URL=REDIS, HUB_QUEUE_PREFIX=PREFIX, HUB_ENCRYPTION_KEYS=KEY,
                HUB_ALLOW_PRIVATE_NETWORKS="1", HUB_LOG_LEVEL="WARNING",
                # What the figures in docs/benchmarks.md measured: prefork -c 2 (the
                # configured threads pool would win over --pool prefork).
                HUB_WORKER_POOL="prefork")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    queues = ",".join(PREFIX + q for q in ("webhooks", "deliveries"))
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "-c", "2",
         "--loglevel", "WARNING", "-Q", queues, "--without-gossip", "--without-mingle",
         "--without-heartbeat"], cwd=ROOT, env=env)


def _insert_events(svc: Services, tenant: str, count: int) -> list[str]:
    with svc.sessions() as session, session.begin():
        endpoint = WebhookEndpoint(tenant_id=tenant, source="stripe", token=uuid.uuid4().hex,
                                   scheme="none")
        session.add(endpoint)
        session.flush()
        rows = [WebhookEvent(endpoint_id=endpoint.id, tenant_id=tenant, source="stripe",
                             external_id=f"evt_{i}", event_type="invoice.paid",
                             headers={"content-type": "application/json"},
                             body=json.dumps({"id": f"evt_{i}", "amount": i}).encode())
                for i in range(count)]
        session.add_all(rows)
        session.flush()
        return [str(r.id) for r in rows]


def _done(svc: Services, tenant: str, count: int, deliveries: bool) -> bool:
    with svc.sessions() as session:
        processed = session.scalar(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.tenant_id == tenant, WebhookEvent.status == "processed"))
        if processed < count or not deliveries:
            return processed >= count
        succeeded = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.tenant_id == tenant, Delivery.status == "succeeded"))
        return succeeded >= count


def run(svc: Services, app: Celery, events: int, url: str | None) -> float:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    if url:
        with svc.sessions() as session, session.begin():
            subscriptions.add(session, svc.vault, svc.settings, tenant=tenant, url=url,
                              event_types=["stripe.*"])
    ids = _insert_events(svc, tenant, events)
    started = time.perf_counter()
    for event_id in ids:
        app.send_task("hub.webhooks.process", kwargs={"event_id": event_id},
                      queue=PREFIX + "webhooks")
    deadline = time.monotonic() + 900
    while not _done(svc, tenant, events, url is not None):
        if time.monotonic() > deadline:
            raise SystemExit("not every event was processed and delivered within 900 s")
        time.sleep(0.05)
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    env = _env()
    os.environ.update(env)
    create_database(SERVER, DB)
    settings = load_settings(env)
    migrate.upgrade(settings)
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(PREFIX + "*"):  # only ours: other benches may share the db
        client.delete(key)
    svc = Services(settings, RecordingDispatcher())
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_port}/hooks"
    app = Celery(broker=REDIS)
    worker = _worker(env)
    try:
        run(svc, app, 50, url)  # warm-up: worker up, pools and sessions connected
        print(f"| run ({args.events} events) | events/s |\n|---|---|")
        for name, target in (("processing only (no subscription)", None),
                             ("processing + 1 signed delivery each", url)):
            print(f"| {name} | {run(svc, app, args.events, target):,.0f} |", flush=True)
    finally:
        worker.terminate()
        worker.wait(30)
        receiver.shutdown()
        svc.close()
        drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
