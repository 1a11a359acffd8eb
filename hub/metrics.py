"""The hub's Prometheus metric objects, one module for every process.

prometheus-client keeps metrics in a process-global registry; this module is
that registry's only writer. Under gunicorn (several worker processes) set
PROMETHEUS_MULTIPROC_DIR to an empty directory before start: each process then
writes its samples to files there and :func:`render` aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

WEBHOOKS_RECEIVED = Counter(
    "hub_webhooks_received_total",
    "Inbound webhook requests by endpoint source and outcome "
    "(accepted, duplicate, ignored, not_found, forbidden, too_large, rate_limited, "
    "invalid_signature, malformed, unavailable).",
    ["source", "outcome"])

WEBHOOK_INGEST_SECONDS = Histogram(
    "hub_webhook_ingest_seconds",
    "Time to verify, record and enqueue one inbound webhook.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (all processes when multi-process) and its type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
