# ruff: noqa: N999 - the file name is the command line's (Procfile, hub dev)
"""Gunicorn settings for the webhook app.

    gunicorn -c webhooks_web/gunicorn.conf.py "webhooks_web:create_app()"

Default: threaded workers, WEB_CONCURRENCY = one process per core, WEB_THREADS = 16
threads each. A request spends most of its time waiting on PostgreSQL's commit
(fsync) and the broker, and the requests waiting in one process share those round
trips: the intake writes whatever events its threads hold in one INSERT, one
commit and one LPUSH (hub.platform.groupcommit). On the 2-core machine of
docs/benchmarks.md that took the ingest from 670-880/s with 8 sync workers to
1,050-1,250/s, with lower tail latency. Threads also keep a slow client from
holding a whole process, so no buffering proxy is required in front.
WEB_THREADS=1 gives sync workers (one request per process, batches of one).
Each process holds its own SQLAlchemy pools; the intake uses one connection per
process at a time, the endpoint lookups a few more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 1)))
threads = int(os.environ.get("WEB_THREADS", "16"))
worker_class = "gthread" if threads > 1 else "sync"
# Providers time out after 10-30 s; answer (or fail) well before that.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never grows unbounded.
max_requests = 100_000
max_requests_jitter = 10_000
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("HUB_LOG_LEVEL", "info").lower()

# Prometheus metrics from every worker: each process writes samples to files in this
# directory and /metrics aggregates them. It must be empty when the server starts.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hub-metrics-")


def on_starting(server: Any) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from hub.platform.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    import gc

    # Everything loaded so far (the app, its modules, pools) lives as long as the worker:
    # keep it out of the collector's generations so each collection walks only what
    # requests allocate (the practice Python's gc.freeze was added for).
    gc.freeze()
