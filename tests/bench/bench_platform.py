"""What the platform features of issue 12 cost on the hot path, against references
measured in the same run.

1. Events: one ``EventBus.publish`` (PUBLISH + XADD MAXLEN ~, pipelined in one round
   trip) against making the same event and PUBLISHing it alone on the same client
   (what publishing cost before the stream).
2. Audit rows: INSERT + COMMIT of one ``integration_logs`` row (with the ``txid``
   column the usage roll-up reads, and its index) against the same INSERT into a copy
   of the table without them, interleaved, without waiting for the WAL flush (the
   fsync is the same for both and would hide the difference).
3. The usage roll-up on beat: one run over N new audit rows, against a plain
   ``GROUP BY`` count of the same rows.

    python tests/bench/bench_platform.py [--events 5000] [--rows 3000] [--rollup 100000]

Uses its own database (hub_bench_platform) and Redis db 12; needs local PostgreSQL
and Redis. The machine is shared: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.dev.embedded import create_database, drop_database, with_database
from hub.ops import usage
from hub.platform import events, migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_PLATFORM_REDIS_URL", "redis://127.0.0.1:6379/12")
DB = "hub_bench_platform"

INSERT = """INSERT INTO {table} (id, tenant_id, integration_id, operation, method, url,
    status_code, outcome, attempt, duration_ms, estimated_cost, started_at)
    VALUES (:id, 'bench', :integration, 'get', 'GET', 'https://api.example.com/v1/x',
            200, 'success', 1, 12, 0.002, now())"""


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({seconds / n * 1e6:,.0f} us each)"


def bench_events(services: Services, n: int) -> None:
    client = services.events.client

    def publish_only() -> None:  # what publishing was before the stream
        event = events.make_event("request.completed", "bench", {"n": 1})
        client.publish(events.channel_for("request.completed"), json.dumps(event))

    rounds = {"PUBLISH only (reference)": publish_only,
              "EventBus.publish (PUBLISH + XADD ~)": lambda: services.events.publish(
                  "request.completed", "bench", {"n": 1})}
    results = dict.fromkeys(rounds, 0.0)
    for _slice in range(n // 500):  # interleaved: both see the same machine
        for name, publish in rounds.items():
            started = time.perf_counter()
            for _i in range(500):
                publish()
            results[name] += time.perf_counter() - started
    ref = results["PUBLISH only (reference)"]
    print("| events | rate | vs reference |\n|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {rate(n, seconds)} | {seconds / ref:.2f}x |")
    client.delete(services.settings.event_stream)


def bench_audit(services: Services, integration_id: uuid.UUID, n: int) -> None:
    with services.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS logs_reference"))
        conn.execute(text("CREATE TABLE logs_reference (LIKE integration_logs "
                          "INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)"))
        conn.execute(text("ALTER TABLE logs_reference DROP COLUMN txid"))  # and its index
    results = {"logs_reference": 0.0, "integration_logs": 0.0}
    # Interleaved in slices, without waiting for the WAL flush: the commit's fsync is
    # the same for both and would drown the difference on a shared disk.
    for _slice in range(n // 100):
        for table in results:
            statement = text(INSERT.format(table=table))
            started = time.perf_counter()
            for _i in range(100):
                with services.engine.begin() as conn:
                    conn.execute(text("SET LOCAL synchronous_commit TO off"))
                    conn.execute(statement, {"id": uuid.uuid4(), "integration": integration_id})
            results[table] += time.perf_counter() - started
    ref = results["logs_reference"]
    print("\n| audit INSERT + COMMIT (synchronous_commit off), one per transaction | rate | "
          "vs reference |\n|---|---|---|")
    print(f"| without txid (reference) | {rate(n, ref)} | 1.00x |")
    print(f"| with txid + index | {rate(n, results['integration_logs'])} | "
          f"{results['integration_logs'] / ref:.2f}x |")


def bench_rollup(services: Services, integration_id: uuid.UUID, n: int) -> None:
    usage.rollup(services)  # start from a clean position
    with services.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO integration_logs (tenant_id, integration_id, operation, outcome, "
            "estimated_cost, started_at) SELECT 'bench', :i, 'op' || (g % 5), "
            "(ARRAY['success','failed','cached','rate_limited'])[1 + g % 4], 0.002, "
            "now() - (g % 3) * interval '1 day' FROM generate_series(1, :n) AS g"),
            {"i": integration_id, "n": n})
    with services.engine.connect() as conn:
        started = time.perf_counter()
        conn.execute(text("SELECT operation, started_at::date, outcome, count(*), "
                          "sum(estimated_cost) FROM integration_logs WHERE tenant_id = "
                          "'bench' GROUP BY 1, 2, 3")).all()
        reference = time.perf_counter() - started
    started = time.perf_counter()
    result = usage.rollup(services)
    seconds = time.perf_counter() - started
    print(f"\n| usage roll-up over {n:,} new audit rows | time | vs reference |\n|---|---|---|")
    print(f"| plain GROUP BY of the same rows (reference) | {reference * 1000:,.0f} ms | 1.00x |")
    print(f"| usage.rollup ({result.groups} usage rows upserted) | {seconds * 1000:,.0f} ms | "
          f"{seconds / reference:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rollup", type=int, default=100_000)
    args = parser.parse_args()
    drop_database(SERVER, DB)
    create_database(SERVER, DB)
    settings = load_settings({}, database_url=with_database(SERVER, DB), redis_url=REDIS,
                             encryption_keys=(Fernet.generate_key().decode(),),
                             redis_prefix="hubbench:")
    migrate.upgrade(settings)
    services = Services(settings, RecordingDispatcher())
    try:
        with services.sessions() as session, session.begin():
            integration_id = integrations.create(session, IntegrationSpec(
                tenant_id="bench", name="api", adapter="rest",
                base_url="https://api.example.com")).id
        bench_events(services, args.events)
        bench_audit(services, integration_id, args.rows)
        bench_rollup(services, integration_id, args.rollup)
    finally:
        services.close()
        drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
