# ruff: noqa: N999 - the file name is the command line's (Procfile, hub dev)
"""Gunicorn settings for the webhook app.

    gunicorn -c webhooks_web/gunicorn.conf.py "webhooks_web:create_app()"

Default: gevent workers, WEB_CONCURRENCY = one process per core, each holding up to
WEB_CONNECTIONS = 1000 connections. A request spends most of its time waiting on
PostgreSQL's commit (fsync) and the broker, and the requests waiting in one process
share those round trips: the intake writes whatever events its requests hold in one
INSERT, one commit and one LPUSH (hub.platform.groupcommit), whether they wait in
threads or in greenlets (gevent patches the locks it uses).

Why gevent (issue 9, item 11): a threaded worker hands each new connection to a
thread, which then blocks reading it; 30 clients sending a byte a second held every
thread and /health timed out. A greenlet per connection costs a few kB, so a slow
client holds no thread; gunicorn gives a request's line and headers ``keepalive``
seconds to arrive and then closes the connection, and the app gives its whole body
WEB_BODY_TIMEOUT seconds (default 30; 0 disables it): past that the request is
answered 408, nothing is stored and the connection is closed (webhooks_web/body.py,
a gevent.Timeout around the read). Measured in docs/benchmarks.md ("Slow clients"): with 200 and 400 slow
connections /health and signed webhooks were answered at the no-attack rate, where
gthread answered nothing. So no buffering proxy is needed in front for slow clients,
up to WEB_CONCURRENCY x WEB_CONNECTIONS open connections per host; past that gunicorn
stops accepting until some close, so a larger flood needs connection limits per
client address at the load balancer.
psycopg (>= 3.1.14) detects gevent's patching and waits cooperatively.

WEB_WORKER_CLASS=gthread (WEB_THREADS threads, default 16) or sync gives each
connection a thread or a process while it is read, without the WEB_BODY_TIMEOUT
deadline: run those only behind a proxy that buffers whole requests (nginx's default
``proxy_request_buffering on``).
Each process holds its own SQLAlchemy pools; the intake uses one connection per
process at a time, the endpoint lookups a few more.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 1)))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
threads = int(os.environ.get("WEB_THREADS", "16")) if worker_class == "gthread" else 1


def _allow_open_files(wanted: int) -> None:
    # Each connection is a file descriptor, and a common default soft limit is 1,024:
    # below WEB_CONNECTIONS, accept() fails with EMFILE long before the promised bound.
    # Raise the soft limit towards the hard one (as nginx's worker_rlimit_nofile does);
    # workers inherit it. The systemd unit also sets LimitNOFILE.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (
            wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


# The pools, the broker, log and metrics files need a few hundred more.
_allow_open_files(worker_connections + 512)
# Providers time out after 10-30 s; answer (or fail) well before that.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
# Also the time a request's line and headers have to arrive under gevent workers.
keepalive = 5
# Recycle workers now and then so a slow leak never grows unbounded.
max_requests = 100_000
max_requests_jitter = 10_000
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("HUB_LOG_LEVEL", "info").lower()

# Prometheus metrics from every worker: each process writes samples to files in this
# directory and /metrics aggregates them. It must be empty when the server starts. A
# directory made here is removed when the server exits (no hub-metrics-* left behind).
# Chosen when the server starts, not when this file is read: reading the settings
# (a test, a tool) must not change the reader's environment.
_OWN_METRICS_DIR: str | None = None


def on_starting(server: Any) -> None:
    # The master, before it forks the workers that load the app and inherit this.
    global _OWN_METRICS_DIR
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = _OWN_METRICS_DIR = tempfile.mkdtemp(prefix="hub-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    from hub.platform.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    import gc

    # Everything loaded so far (the app, its modules, pools) lives as long as the worker:
    # keep it out of the collector's generations so each collection walks only what
    # requests allocate (the practice Python's gc.freeze was added for).
    gc.freeze()
