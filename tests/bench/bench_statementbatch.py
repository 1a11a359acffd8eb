"""What a call's ``sending`` audit row costs the writing process: alone or batched.

64 threads each write ``sending`` rows (hub.calls.audit.insert_sending, the statement
a call commits synchronously before its request leaves, counting the task's earlier
attempts) to the hub's table, two ways, in the same run:

* ``single``: each row its own autocommitted statement on the pool (up to six at
  once), as before hub.platform.statementbatch (the reference);
* ``batched``: through :class:`hub.platform.statementbatch.BatchedStatements`, as
  the worker writes them now.

and two patterns: ``together`` (every thread writes its rows back to back: the most
a batch can hold) and ``spread`` (each thread pauses 50-400 ms between rows, as a
thread whose call waits for its provider does: batches of one, mostly). Prints the
CPU of this process per row (``time.process_time``, all threads) and rows/s.

    python tests/bench/bench_statementbatch.py [--rows 60] [--spread-rows 20]

Uses its own database (hub_bench_batch); needs local PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.calls import audit
from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.db import make_autocommit_engine
from hub.platform.scheduler import utcnow
from hub.platform.statementbatch import BatchedStatements, execute_alone

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB = "hub_bench_batch"
THREADS = 64
COUNTED = ("success", "failed")


class Unbatched:
    """The write of before: each statement on a connection of the pool, by itself."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def execute(self, sql: str, params: Any) -> Any:
        return execute_alone(self.engine, sql, params)


def sending_row() -> dict[str, Any]:
    return audit.values(audit.Attempt(
        tenant_id="bench", integration_id=None, operation="create", outcome="sending",
        started_at=utcnow(), method="POST", url="http://127.0.0.1:9/v1/items",
        request_headers={"Content-Type": "application/json"}, request_body=b'{"n": 1}',
        task_id=str(uuid.uuid4())))


def run(write: Callable[[dict[str, Any]], int], rows: int, pause: tuple[float, float],
        ) -> tuple[float, float]:
    """CPU ms per row and rows/s of THREADS threads writing ``rows`` rows each."""
    work = [[sending_row() for _ in range(rows)] for _ in range(THREADS)]

    def thread(mine: list[dict[str, Any]]) -> None:
        for row in mine:
            write(row)
            if pause[1]:
                time.sleep(random.uniform(*pause))  # a call waiting for its provider

    cpu, wall = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=thread, args=(mine,)) for mine in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = THREADS * rows
    return ((time.process_time() - cpu) * 1000 / total,
            total / (time.monotonic() - wall))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=60, help="rows per thread, together")
    parser.add_argument("--spread-rows", type=int, default=20, help="rows per thread, spread")
    args = parser.parse_args()
    create_database(SERVER, DB)
    settings = load_settings(dict(os.environ, HUB_DATABASE_URL=with_database(SERVER, DB)))
    migrate.upgrade(settings)
    engine = make_autocommit_engine(settings)
    single = Unbatched(engine)
    batched = BatchedStatements(engine)

    def writer(statements: Any) -> Callable[[dict[str, Any]], int]:
        return lambda row: audit.insert_sending(statements, row, counted=COUNTED,
                                                orphaned="bench")

    print("| pattern | writes | CPU ms per row | rows/s |")
    print("|---|---|---|---|")
    try:
        for pattern, rows, pause in (("together", args.rows, (0.0, 0.0)),
                                     ("spread", args.spread_rows, (0.05, 0.4))):
            for name, statements in (("single", single), ("batched", batched), ("single", single),
                                     ("batched", batched)):
                cpu, rate = run(writer(statements), rows, pause)
                print(f"| {pattern} | {name} | {cpu:.3f} | {rate:,.0f} |", flush=True)
    finally:
        engine.dispose()
        drop_database(SERVER, DB)


if __name__ == "__main__":
    main()
