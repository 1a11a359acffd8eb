"""The hub's Prometheus metric families, one module for every process.

Each family is declared here and made in a process only when that process first
records it, or when the process declares it its own (:func:`own`: the web app and
the worker each name theirs at start-up, so their /metrics show them from the
first scrape, at zero where they have no labels). A process therefore exports
what it measures and nothing else: the worker no web ingest histogram, the web app
no delivery histogram (issue 13 item 19; before, every family was made at import,
and a family without labels wrote its zero sample wherever this module was
imported).

Under gunicorn or a prefork worker (several processes) set
PROMETHEUS_MULTIPROC_DIR to an empty directory before the process makes its first
family: every process then writes its samples to files there and
:func:`registry` sums them. The choice between that and in-memory values is made
once, at the first family, and :func:`render` follows the same choice: a variable
set later (by a library, a test, a config file run in-process) never makes
/metrics read files nothing writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: The variable naming the directory of sample files (prometheus_client's).
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

M = TypeVar("M", Counter, Gauge, Histogram)

_lock = threading.Lock()
_multiprocess: bool | None = None  # chosen at the first family this process makes
_owned: list[Family[Any]] = []


class Family(Generic[M]):
    """One metric family: its kind, name, help, label names and options
    (``buckets``, ``multiprocess_mode``), made in this process on first use."""

    def __init__(self, kind: type[M], name: str, documentation: str,
                 labels: Iterable[str] = (), **options: Any) -> None:
        self.kind: type[M] = kind
        self.name, self.documentation = name, documentation
        self.labels = tuple(labels)
        self._options = options
        self._metric: M | None = None

    def get(self) -> M:
        """The family's metric object in this process (made now if it is not yet)."""
        metric = self._metric
        if metric is None:
            with _lock:
                if self._metric is None:
                    _choose_storage()
                    self._metric = self.kind(self.name, self.documentation, self.labels,
                                             **self._options)
                metric = self._metric
        return metric

    def child(self, *label_values: str) -> M:
        """The series of ``label_values`` (one per label name, in order)."""
        return self.get().labels(*label_values)


def _choose_storage() -> None:
    # Called with _lock held. prometheus_client picks its value storage when it is
    # first imported, often before a worker has chosen its sample directory (the
    # celery command imports it for Flower's plugin): pick again here, once.
    global _multiprocess
    if _multiprocess is None:
        _multiprocess = bool(os.environ.get(MULTIPROCESS_DIRECTORY))
        values.ValueClass = (values.get_value_class() if _multiprocess
                             else values.MutexValue)


def multiprocess_mode() -> bool:
    """True when this process's families write sample files (decided at its first)."""
    with _lock:
        _choose_storage()
        return bool(_multiprocess)


def own(*families: Family[Any]) -> None:
    """Declare ``families`` this process's own: made now, exported from the first
    scrape (a family without labels at zero; one with labels as its help and type)."""
    for family in families:
        family.get()
        with _lock:
            if family not in _owned:
                _owned.append(family)


# --- inbound webhooks: the web app -----------------------------------------------------------

WEBHOOKS_RECEIVED = Family(
    Counter, "hub_webhooks_received_total",
    "Inbound webhook requests by endpoint source and outcome (accepted, duplicate, "
    "ignored, or the lower-cased error code: not_found, forbidden, payload_too_large, "
    "rate_limited, invalid_signature, malformed_body, service_unavailable...; "
    "unavailable for an unexpected failure).",
    ["source", "outcome"])

WEBHOOK_ENQUEUE_FAILURES = Family(
    Counter, "hub_webhook_enqueue_failures_total",
    "Webhook events committed but not enqueued (broker down); the sweeper re-enqueues them.")

WEBHOOK_INGEST_SECONDS = Family(
    Histogram, "hub_webhook_ingest_seconds",
    "Time to verify, record and enqueue one inbound webhook.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))

WEBHOOK_INGEST_BATCH = Family(
    Histogram, "hub_webhook_ingest_batch_events",
    "Events stored by one INSERT of the intake's group commit (1 with sync workers).",
    buckets=(1, 2, 4, 8, 16, 32, 64))

# --- work done by the workers ---------------------------------------------------------------

WEBHOOK_EVENTS_PROCESSED = Family(
    Counter, "hub_webhook_events_processed_total",
    "Processing attempts of recorded webhook events by source and outcome "
    "(processed, skipped, failed, dead).", ["source", "outcome"])

DELIVERIES = Family(
    Counter, "hub_deliveries_total",
    "Outbound delivery attempts to subscribers by outcome (succeeded, failed, throttled, "
    "gone, dead, error).", ["outcome"])

DELIVERY_SECONDS = Family(
    Histogram, "hub_delivery_duration_seconds", "Duration of one outbound delivery POST.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0))

CALLS = Family(
    Counter, "hub_calls_total",
    "Outbound call attempts by integration, operation and outcome (success, cached, "
    "rate_limited, circuit_open, retry, or the lower-cased error code).",
    ["integration", "operation", "outcome"])

CALL_SECONDS = Family(
    Histogram, "hub_call_duration_seconds",
    "Duration of one outbound call attempt through the pipeline (cache hits included).",
    ["integration", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

CACHE_LOOKUPS = Family(
    Counter, "hub_cache_lookups_total", "Response cache lookups by integration, operation "
    "and result (hit, miss).", ["integration", "operation", "result"])

RATE_LIMIT_REJECTIONS = Family(
    Counter, "hub_rate_limit_rejections_total",
    "Calls held back by a quota (the hub's own or one learned from the provider).",
    ["integration"])

BREAKER_OPEN = Family(
    Gauge, "hub_breaker_open", "1 while an integration's circuit was last seen open, else 0.",
    ["integration"], multiprocess_mode="mostrecent")

CALL_COST = Family(
    Counter, "hub_call_cost_total",
    "Estimated cost (cost_per_call of attempts that reached the provider) by tenant and "
    "integration: one series per integration that costs money; per operation and day "
    "see `hub usage`.", ["tenant", "integration"])

# --- any process that publishes events (workers; the web app's OAuth2 callback) ----------

EVENTS_DROPPED = Family(
    Counter, "hub_events_dropped_total",
    "Events not published (Redis unavailable or slow; publishing fails open), by type.",
    ["type"])


def record_webhook_received(source: str, outcome: str, seconds: float) -> None:
    """Count one inbound webhook request and the time it took to answer."""
    WEBHOOKS_RECEIVED.child(source, outcome).inc()
    WEBHOOK_INGEST_SECONDS.get().observe(seconds)


def record_ingest_batch(events: int) -> None:
    WEBHOOK_INGEST_BATCH.get().observe(events)


def record_enqueue_failures(events: int) -> None:
    WEBHOOK_ENQUEUE_FAILURES.get().inc(events)


def record_event_processed(source: str, outcome: str) -> None:
    WEBHOOK_EVENTS_PROCESSED.child(source, outcome).inc()


def record_delivery(outcome: str, seconds: float) -> None:
    """Count one delivery attempt by outcome, and how long its POST took."""
    DELIVERIES.child(outcome).inc()
    DELIVERY_SECONDS.get().observe(seconds)


def record_event_dropped(event_type: str) -> None:
    EVENTS_DROPPED.child(event_type).inc()


def record_cost(tenant: str, integration: str, cost: Decimal) -> None:
    CALL_COST.child(tenant, integration).inc(float(cost))


def record_call(integration: str, operation: str, outcome: str, seconds: float) -> None:
    """Count one call attempt and its latency."""
    CALLS.child(integration, operation, outcome).inc()
    CALL_SECONDS.child(integration, operation).observe(seconds)


def record_cache(integration: str, operation: str, hit: bool) -> None:
    CACHE_LOOKUPS.child(integration, operation, "hit" if hit else "miss").inc()


def record_rate_limited(integration: str) -> None:
    RATE_LIMIT_REJECTIONS.child(integration).inc()


def set_breaker_open(integration: str, is_open: bool) -> None:
    BREAKER_OPEN.child(integration).set(1 if is_open else 0)


# --- exposition ----------------------------------------------------------------------------


class _Exported(Collector):
    """This process's families: in memory, or the sample files of every process
    sharing its directory plus its own families that no file holds yet (their help
    and type, as the in-memory registry shows a family without series)."""

    def collect(self) -> Iterator[Metric]:
        if not multiprocess_mode():
            yield from REGISTRY.collect()
            return
        found = list(multiprocess.MultiProcessCollector(None).collect())
        yield from found
        names = {metric.name for metric in found}
        with _lock:
            owned = list(_owned)
        for family in owned:
            yield from (m for m in family.get().describe() if m.name not in names)


def registry(*extra: Collector) -> CollectorRegistry:
    """A registry of what this process exports (see :class:`_Exported`) and the
    ``extra`` collectors, read at each scrape. For a metrics server of its own."""
    served = CollectorRegistry(auto_describe=False)
    served.register(_Exported())
    for collector in extra:
        served.register(collector)
    return served


def render(*extra: Collector) -> tuple[bytes, str]:
    """The exposition text of this process's metrics (all processes when
    multi-process) and of ``extra`` collectors read now, and its content type."""
    return generate_latest(registry(*extra)), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        multiprocess.mark_process_dead(pid)
