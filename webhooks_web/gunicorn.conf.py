# ruff: noqa: N999 - the file name is the command line's (Procfile, hub dev)
"""Gunicorn settings for the webhook app.

    gunicorn -c webhooks_web/gunicorn.conf.py "webhooks_web:create_app()"

Each request spends most of its time waiting on PostgreSQL's commit and the
broker, so a worker runs several threads to overlap those waits. Sizing, for
the 2-core machine of docs/benchmarks.md: WEB_CONCURRENCY=4 processes x
WEB_THREADS=4 threads reached the hub's best sustained ingest rate there; scale
processes with cores (about 2 per core) and keep threads at 2-8. Every process
holds its own SQLAlchemy pool (5 + 10 overflow) and broker connections: keep
processes x threads below PostgreSQL's max_connections headroom.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
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
