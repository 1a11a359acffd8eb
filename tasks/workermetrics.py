"""Prometheus metrics of a Celery worker, served by its main process.

The worker owns the hub's call, cache, breaker, delivery, processing and event
metrics (:data:`METRICS`; the web app owns the ingest ones), recorded in the pool's
threads or, under prefork, its child processes. With ``HUB_WORKER_METRICS_PORT``
set, every process of the worker writes its samples to files in a directory of its
own (prometheus_client's multiprocess mode) and the main process serves their sum
on that port. The directory must be chosen before the process makes its first
metric family, so :func:`prepare` runs from ``tasks/__init__.py`` ahead of the app.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry

from hub.platform import metrics
from hub.platform.config import Settings
from hub.platform.services import Services

#: The families a worker measures, served from its first scrape (issue 13 item 19).
METRICS = (metrics.CALLS, metrics.CALL_SECONDS, metrics.CACHE_LOOKUPS,
           metrics.RATE_LIMIT_REJECTIONS, metrics.BREAKER_OPEN, metrics.CALL_COST,
           metrics.DELIVERIES, metrics.DELIVERY_SECONDS, metrics.WEBHOOK_EVENTS_PROCESSED,
           metrics.EVENTS_DROPPED)

PORT_VARIABLE = "HUB_WORKER_METRICS_PORT"
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


def prepare(argv: list[str] | None = None,
            environ: MutableMapping[str, str] | None = None) -> None:
    """Give this worker an empty sample directory (in ``environ``, default the
    process's) if it is to serve metrics; hub.platform.metrics then writes its
    samples there from its first family on.

    Only a ``celery ... worker`` process: beat, Flower (which serves its own
    metrics) and the ``hub`` CLI import the same package, often with the same
    environment, and must keep prometheus_client's ordinary in-memory mode.
    """
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    if "worker" not in argv or environ.get(PORT_VARIABLE, "0").strip() in ("", "0"):
        return
    if not environ.get(DIRECTORY_VARIABLE):
        environ[DIRECTORY_VARIABLE] = own = tempfile.mkdtemp(prefix="hub-worker-metrics-")
        # Made here, removed here: nothing left in the temporary folder at every start.
        atexit.register(_remove_if_main, own, os.getpid())


def _remove_if_main(directory: str, main_pid: int) -> None:
    if os.getpid() == main_pid:  # pool children (forked) share the atexit list
        shutil.rmtree(directory, ignore_errors=True)


def connect_signals() -> None:
    """Own the worker's families and serve them on worker start; forget a pool
    process's live gauges when it exits."""
    from celery.signals import worker_init, worker_process_shutdown

    worker_init.connect(_start, weak=False)
    worker_process_shutdown.connect(_forget, weak=False)


def _start(**_: Any) -> None:
    # In the main process, before a prefork pool forks: its children inherit them.
    metrics.own(*METRICS)
    _serve()


def _serve() -> None:
    from prometheus_client import start_http_server

    from hub.platform.config import load_settings

    settings = load_settings()
    port, address = settings.worker_metrics_port, settings.worker_metrics_address
    if not port or not os.environ.get(DIRECTORY_VARIABLE):
        return
    try:
        # A daemon thread of the main process; the pool's children are forked after
        # this, without the thread, and only write their sample files. Loopback unless
        # configured: the metrics name tenants' integrations (issue 9 item 14).
        start_http_server(port, addr=address, registry=registry(_scrape_services(settings)))
    except OSError as exc:
        # Two workers on one host with the same port: run, but say why nothing is served.
        log.error("worker metrics not served: %s port %d: %s", address, port,
                  exc.strerror or exc)
        return
    log.info("worker metrics on %s:%d/metrics", address, port)


def _scrape_services(settings: Settings) -> Services:
    # Without pooled connections: this process forks the pool.
    from sqlalchemy.pool import NullPool

    from celerydispatch import CeleryDispatcher
    from tasks.app import app

    return Services(settings, CeleryDispatcher(app), engine_options={"poolclass": NullPool})


def registry(services: Services) -> CollectorRegistry:
    """What the worker serves: its processes' samples, plus the integrations' health
    and breaker states read from ``services`` at each scrape."""
    from hub.ops.statemetrics import IntegrationCollector

    return metrics.registry(IntegrationCollector(services))


def _forget(pid: int | None = None, **_: Any) -> None:
    metrics.mark_process_dead(pid or os.getpid())
