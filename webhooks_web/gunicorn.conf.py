# ruff: noqa: N999 - the file name is the command line's (Procfile, hub dev)
"""Gunicorn settings for the webhook app.

    gunicorn -c webhooks_web/gunicorn.conf.py "webhooks_web:create_app()"

Each request is short and spends much of its time waiting on PostgreSQL's
commit (fsync) and the broker, so more processes than cores keep the CPUs busy.
Default: synchronous workers (WEB_THREADS=1), WEB_CONCURRENCY = 4 x cores. On the
2-core machine of docs/benchmarks.md, 8 sync workers gave the best ingest rate and
tail latency (p99 93 ms against 163 ms for 4 workers x 4 threads, whose threads
queue on the GIL). Sync workers expect a buffering proxy (nginx, a cloud load
balancer) in front; set WEB_THREADS=4 (gthread) to serve slow clients directly.
Every process holds its own SQLAlchemy pools: keep processes x threads well below
PostgreSQL's max_connections.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(4 * (os.cpu_count() or 1))))
threads = int(os.environ.get("WEB_THREADS", "1"))
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
    from hub.metrics import mark_process_dead

    mark_process_dead(worker.pid)
