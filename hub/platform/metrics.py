"""The hub's Prometheus metric objects, one module for every process.

prometheus-client keeps metrics in a process-global registry; this module is
that registry's only writer. Under gunicorn (several worker processes) set
PROMETHEUS_MULTIPROC_DIR to an empty directory before start: each process then
writes its samples to files there and :func:`render` aggregates them.
"""

from __future__ import annotations

import os
from decimal import Decimal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

WEBHOOKS_RECEIVED = Counter(
    "hub_webhooks_received_total",
    "Inbound webhook requests by endpoint source and outcome (accepted, duplicate, "
    "ignored, or the lower-cased error code: not_found, forbidden, payload_too_large, "
    "rate_limited, invalid_signature, malformed_body, service_unavailable...).",
    ["source", "outcome"])

WEBHOOK_ENQUEUE_FAILURES = Counter(
    "hub_webhook_enqueue_failures_total",
    "Webhook events committed but not enqueued (broker down); the sweeper re-enqueues them.")

WEBHOOK_INGEST_SECONDS = Histogram(
    "hub_webhook_ingest_seconds",
    "Time to verify, record and enqueue one inbound webhook.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))

WEBHOOK_INGEST_BATCH = Histogram(
    "hub_webhook_ingest_batch_events",
    "Events stored by one INSERT of the intake's group commit (1 with sync workers).",
    buckets=(1, 2, 4, 8, 16, 32, 64))


WEBHOOK_EVENTS_PROCESSED = Counter(
    "hub_webhook_events_processed_total",
    "Processing attempts of recorded webhook events by source and outcome "
    "(processed, skipped, failed, dead).", ["source", "outcome"])

DELIVERIES = Counter(
    "hub_deliveries_total",
    "Outbound delivery attempts to subscribers by outcome (succeeded, failed, throttled, "
    "gone, dead, error).", ["outcome"])

DELIVERY_SECONDS = Histogram(
    "hub_delivery_duration_seconds", "Duration of one outbound delivery POST.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0))

# --- outbound calls (hub.calls) ---------------------------------------------------------------

CALLS = Counter(
    "hub_calls_total",
    "Outbound call attempts by integration, operation and outcome (success, cached, "
    "rate_limited, circuit_open, retry, or the lower-cased error code).",
    ["integration", "operation", "outcome"])

CALL_SECONDS = Histogram(
    "hub_call_duration_seconds",
    "Duration of one outbound call attempt through the pipeline (cache hits included).",
    ["integration", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

CACHE_LOOKUPS = Counter(
    "hub_cache_lookups_total", "Response cache lookups by integration, operation and result "
    "(hit, miss).", ["integration", "operation", "result"])

RATE_LIMIT_REJECTIONS = Counter(
    "hub_rate_limit_rejections_total",
    "Calls held back by a quota (the hub's own or one learned from the provider).",
    ["integration"])

BREAKER_OPEN = Gauge(
    "hub_breaker_open", "1 while an integration's circuit was last seen open, else 0.",
    ["integration"], multiprocess_mode="mostrecent")


EVENTS_DROPPED = Counter(
    "hub_events_dropped_total",
    "Events not published (Redis unavailable or slow; publishing fails open), by type.",
    ["type"])


def record_event_dropped(event_type: str) -> None:
    EVENTS_DROPPED.labels(event_type).inc()


CALL_COST = Counter(
    "hub_call_cost_total",
    "Estimated cost (cost_per_call of attempts that reached the provider) by tenant and "
    "integration: one series per integration that costs money; per operation and day "
    "see `hub usage`.", ["tenant", "integration"])


def record_cost(tenant: str, integration: str, cost: Decimal) -> None:
    CALL_COST.labels(tenant, integration).inc(float(cost))


def record_call(integration: str, operation: str, outcome: str, seconds: float) -> None:
    """Count one call attempt and its latency."""
    CALLS.labels(integration, operation, outcome).inc()
    CALL_SECONDS.labels(integration, operation).observe(seconds)


def record_cache(integration: str, operation: str, hit: bool) -> None:
    CACHE_LOOKUPS.labels(integration, operation, "hit" if hit else "miss").inc()


def record_rate_limited(integration: str) -> None:
    RATE_LIMIT_REJECTIONS.labels(integration).inc()


def set_breaker_open(integration: str, is_open: bool) -> None:
    BREAKER_OPEN.labels(integration).set(1 if is_open else 0)


def multiprocess_registry() -> CollectorRegistry:
    """A registry summing the sample files of every process (PROMETHEUS_MULTIPROC_DIR)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render(*extra: Collector) -> tuple[bytes, str]:
    """The exposition text of every metric (all processes when multi-process), plus
    ``extra`` collectors read now, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        body = generate_latest(multiprocess_registry())
    else:
        body = generate_latest()
    if extra:
        state = CollectorRegistry()
        for collector in extra:
            state.register(collector)
        body += generate_latest(state)
    return body, CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
