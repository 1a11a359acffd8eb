"""Gauges of the hub's shared state, read from Redis and PostgreSQL when scraped.

Counters and histograms are recorded where the work happens (hub.platform.metrics); how
many messages wait in each broker queue, how many webhook events are not done
yet, how many dead letters there are and when each maintenance task last
succeeded is state, not events, so the web app's ``/metrics`` reads it at scrape time: the same answer from every replica, and
never stale. A source that does not answer leaves its family out of that scrape
(logged), so the rest of ``/metrics`` still answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hub.ops import dlq, healthchecks, maintenance, queues
from hub.platform.models import WebhookEvent
from hub.platform.services import Services

log = logging.getLogger(__name__)

#: Event statuses that mean "not done yet"; "processed" rows are the bulk of the table.
OPEN_EVENT_STATUSES = ("pending", "processing", "failed", "dead")


class StateCollector(Collector):
    """hub_queue_messages{queue}, hub_webhook_events{status}, hub_dead_letters,
    hub_maintenance_last_success_timestamp_seconds{task}."""

    def __init__(self, services: Services, broker: redis.Redis | None,
                 queues: Mapping[str, str]) -> None:
        self._services = services
        self._broker = broker
        self._queues = dict(queues)

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()

    def collect(self) -> Iterator[Metric]:
        yield from self._queue_depth()
        yield from self._database_state()
        yield from self._maintenance()

    def _queue_depth(self) -> Iterator[Metric]:
        if self._broker is None:
            return
        try:
            counts = queues.lengths(self._broker, list(self._queues.values()))
        except redis.RedisError as exc:
            log.warning("queue depth not scraped: broker unavailable (%s)", exc)
            return
        family = GaugeMetricFamily("hub_queue_messages",
                                   "Messages waiting in each broker queue (not yet taken).",
                                   labels=["queue"])
        for name, count in zip(self._queues, counts):
            family.add_metric([name], count)
        yield family

    def _database_state(self) -> Iterator[Metric]:
        try:
            with self._services.sessions() as session:
                by_status = {status: count for status, count in session.execute(
                    select(WebhookEvent.status, func.count())
                    .where(WebhookEvent.status.in_(OPEN_EVENT_STATUSES))
                    .group_by(WebhookEvent.status))}
                letters = dlq.count(session)
        except SQLAlchemyError as exc:
            log.warning("event and dead-letter gauges not scraped: database unavailable (%s)",
                        type(exc).__name__)
            return
        events = GaugeMetricFamily("hub_webhook_events",
                                   "Webhook events not processed yet, by status.",
                                   labels=["status"])
        for status in OPEN_EVENT_STATUSES:
            events.add_metric([status], by_status.get(status, 0))
        yield events
        yield GaugeMetricFamily("hub_dead_letters", "Dead letters in the table (DLQ size).",
                                value=letters)

    def _maintenance(self) -> Iterator[Metric]:
        try:
            stamps = maintenance.last_successes(self._services)
        except (redis.RedisError, OSError) as exc:
            log.warning("maintenance stamps not scraped: Redis unavailable (%s)", exc)
            return
        family = GaugeMetricFamily(
            "hub_maintenance_last_success_timestamp_seconds",
            "When each maintenance task beat schedules last succeeded (Unix time): "
            "beat is alive while these move.", labels=["task"])
        for task, at in sorted(stamps.items()):
            family.add_metric([task], at)
        yield family


class IntegrationCollector(Collector):
    """hub_integration_health{tenant,integration} and hub_breaker_state{tenant,integration},
    read from PostgreSQL and Redis at each scrape.

    One series per integration: bounded by the integrations table, like the
    hub_calls_total{integration} labels. The labels name tenants' integrations, so
    the workers serve these on their metrics port (loopback unless configured), never
    the provider-facing web app.
    """

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        try:
            found = healthchecks.detailed(self._services)
        except SQLAlchemyError as exc:
            log.warning("integration health gauges not scraped: database unavailable (%s)",
                        type(exc).__name__)
            return
        health = GaugeMetricFamily(
            "hub_integration_health", "Last health check of each integration: 1 healthy, "
            "0.5 degraded (error answer), 0 down (no answer); absent until first checked.",
            labels=["tenant", "integration"])
        breakers = GaugeMetricFamily(
            "hub_breaker_state", "Circuit breaker of each integration: 0 closed, "
            "0.5 half-open (the next call is a trial), 1 open.",
            labels=["tenant", "integration"])
        for item in found:
            labels = [item["tenant"], item["integration"]]
            if item["health_status"] in healthchecks.HEALTH_VALUES:
                health.add_metric(labels, healthchecks.HEALTH_VALUES[item["health_status"]])
            if item["breaker"] in healthchecks.BREAKER_VALUES:
                breakers.add_metric(labels, healthchecks.BREAKER_VALUES[item["breaker"]])
        yield health
        yield breakers
