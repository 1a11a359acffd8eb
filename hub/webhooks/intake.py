"""The webhook hot path: check, record durably, then enqueue (DESIGN §5).

:meth:`Intake.receive` answers only after the event row is committed: a crash
before the commit leaves nothing and the provider retries; a broker failure
after it leaves a ``pending`` row that the processing sweeper re-enqueues. The
provider's event id is unique per endpoint, so a retried event is recorded
once and answered ``duplicate``.

The durable write goes through a group commit (:mod:`hub.platform.groupcommit`): the
requests of one process that wait at the same moment share one INSERT (plus one
SELECT for duplicates), one commit and one LPUSH; a lone request writes at once.
Endpoints are cached decrypted in process memory for
:data:`ENDPOINT_CACHE_SECONDS`, and the endpoint counters are summed in memory
and written at most once per :data:`COUNTER_FLUSH_SECONDS` (a hot row updated by
every request would serialise all inserts on its lock).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, func, update
from sqlalchemy.orm import Session

from hub.calls.quotas import QuotaLimiter
from hub.platform import metrics, pgtext
from hub.platform.dispatch import send_many
from hub.platform.errors import (
    Forbidden,
    HubError,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
)
from hub.platform.groupcommit import GroupCommit
from hub.platform.models import WebhookEndpoint
from hub.platform.redaction import redact_headers
from hub.platform.services import Services
from hub.webhooks import endpoints, identity, signatures
from hub.webhooks.endpoints import IngressEndpoint
from hub.webhooks.store import (
    DATABASE_DOWN,
    OUTAGE,
    EventStore,
    NewEvent,
    Stored,
    make_intake_engine,
)

log = logging.getLogger(__name__)

PROCESS_TASK = "hub.webhooks.process"
#: How long a disable, rotation or deletion may take to reach a running web process.
ENDPOINT_CACHE_SECONDS = 5.0
COUNTER_FLUSH_SECONDS = 1.0


class HeaderItems(Protocol):
    """Any header collection with ``items()`` (a dict, werkzeug's Headers)."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class Receipt:
    """The answer to a provider: the stored event's id, and whether it was a retry."""

    id: uuid.UUID | None
    duplicate: bool = False
    #: True when the endpoint's event-type filter dropped the event (nothing stored).
    ignored: bool = False
    #: A provider handshake's answer (Slack's url_verification), sent instead of a receipt.
    reply: dict[str, Any] | None = None


class EndpointCache:
    """Endpoints by (source, token), decrypted, kept for ``ttl`` seconds. Thread-safe."""

    def __init__(self, ttl: float = ENDPOINT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._entries: dict[tuple[str, str], tuple[float, IngressEndpoint]] = {}
        self._guard = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str]) -> IngressEndpoint | None:
        entry = self._entries.get(key)
        return entry[1] if entry and entry[0] > self._clock() else None

    def get_or_load(self, key: tuple[str, str],
                    load: Callable[[], IngressEndpoint | None]) -> IngressEndpoint | None:
        """The cached endpoint, else ``load()``'s (cached unless None).

        One load per key at a time: when a busy endpoint's entry expires, the
        threads that miss it together wait for one lookup instead of each running
        their own (and each taking a database connection). Other keys (a flood of
        unknown tokens, say) never wait for it.
        """
        endpoint = self.get(key)
        if endpoint is not None:
            return endpoint
        with self._guard:
            lock = self._loading.setdefault(key, threading.Lock())
        try:
            with lock:
                endpoint = self.get(key)
                if endpoint is None:
                    endpoint = load()
                    if endpoint is not None:
                        self.put(key, endpoint)
                return endpoint
        finally:
            with self._guard:
                if not lock.locked():
                    self._loading.pop(key, None)

    def put(self, key: tuple[str, str], endpoint: IngressEndpoint) -> None:
        self._entries[key] = (self._clock() + self._ttl, endpoint)

    def clear(self) -> None:
        self._entries.clear()


class CounterBuffer:
    """Per-endpoint received/duplicate/rejected counts, written in one short transaction."""

    COLUMNS = ("received_count", "duplicate_count", "rejected_count")

    def __init__(self, interval: float = COUNTER_FLUSH_SECONDS) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, list[int]] = {}
        self._last_flush = time.monotonic()

    def add(self, endpoint_id: uuid.UUID, column: str) -> None:
        with self._lock:
            counts = self._pending.setdefault(endpoint_id, [0, 0, 0])
            counts[self.COLUMNS.index(column)] += 1

    def flush(self, session_factory: Callable[[], Session], *, force: bool = False) -> None:
        """Write the sums if due (or ``force``); on failure keep them for the next flush."""
        with self._lock:
            if not self._pending or (not force and
                                     time.monotonic() - self._last_flush < self._interval):
                return
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        try:
            self._write(session_factory, pending)
        except DATABASE_DOWN:
            log.warning("webhook endpoint counters not written; kept for the next flush")
            for endpoint_id, counts in pending.items():
                for column, n in zip(self.COLUMNS, counts):
                    for _ in range(n):
                        self.add(endpoint_id, column)

    def _write(self, session_factory: Callable[[], Session],
               pending: dict[uuid.UUID, list[int]]) -> None:
        with session_factory() as session, session.begin():
            # Sorted ids: two processes flushing the same endpoints lock them in one order.
            for endpoint_id, (received, duplicate, rejected) in sorted(pending.items()):
                values: dict[str, Any] = {
                    "received_count": WebhookEndpoint.received_count + received,
                    "duplicate_count": WebhookEndpoint.duplicate_count + duplicate,
                    "rejected_count": WebhookEndpoint.rejected_count + rejected}
                if received or duplicate:
                    values["last_received_at"] = func.now()
                session.execute(update(WebhookEndpoint)
                                .where(WebhookEndpoint.id == endpoint_id).values(**values))


def _allowed(endpoint: IngressEndpoint, remote_addr: str | None) -> bool:
    if not endpoint.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in endpoint.allowed_ips)


def _wanted(endpoint: IngressEndpoint, event_type: str | None) -> bool:
    if not endpoint.event_types:
        return True
    return event_type is not None and any(
        fnmatch.fnmatchcase(event_type, pattern) for pattern in endpoint.event_types)


class Intake:
    """Receives webhooks for one process; holds its endpoint cache and counter buffer."""

    def __init__(self, services: Services, *, cache: EndpointCache | None = None,
                 engine: Engine | None = None) -> None:
        self._services = services
        self._cache = cache or EndpointCache()
        # The group commit writes one batch at a time: a small pool is all it uses.
        self._store = EventStore(engine or make_intake_engine(services.settings, pool_size=2,
                                                              max_overflow=2))
        self._writer: GroupCommit[NewEvent, Stored] = GroupCommit(self.store_and_enqueue)
        self.counters = CounterBuffer()
        self._limiter = QuotaLimiter(services.redis,
                                     services.settings.redis_key("webhooks", "ratelimit") + ":")

    @property
    def writer(self) -> GroupCommit[NewEvent, Stored]:
        """The process's group commit (tests and diagnostics read how many wait)."""
        return self._writer

    def receive(self, source: str, token: str, body: bytes, headers: HeaderItems,
                remote_addr: str | None = None) -> Receipt:
        """Verify and durably record one provider request; enqueue its processing.

        Raises NotFound (unknown or disabled endpoint), Forbidden (IP not allowed),
        PayloadTooLarge, RateLimited, InvalidSignature, MalformedBody, and
        ServiceUnavailable when PostgreSQL cannot record it (nothing is written).
        """
        started = time.perf_counter()
        label, outcome = "-", "unavailable"
        try:
            endpoint = self._endpoint(source, token)
            label = endpoint.source
            receipt = self._accept(endpoint, body, headers, remote_addr)
            outcome = ("ignored" if receipt.ignored else
                       "duplicate" if receipt.duplicate else "accepted")
            return receipt
        except HubError as exc:
            outcome = exc.code.lower()
            raise
        finally:
            metrics.record_webhook_received(label, outcome, time.perf_counter() - started)
            self.counters.flush(self._services.sessions)

    def _endpoint(self, source: str, token: str) -> IngressEndpoint:
        if not endpoints.plausible_address(source, token):
            # Never a lookup: a value PostgreSQL cannot hold (a NUL from ``%00``) would
            # fail the query, and that is not an outage (issue 9, item 9).
            raise NotFound("unknown webhook endpoint")

        def load() -> IngressEndpoint | None:
            with self._services.sessions() as session:
                return endpoints.load_for_ingress(session, self._services.vault, source, token)

        try:
            endpoint = self._cache.get_or_load((source, token), load)
        except DATABASE_DOWN:
            raise ServiceUnavailable("the event store is unavailable; retry later") from None
        if endpoint is None or not endpoint.active:
            raise NotFound("unknown webhook endpoint")
        return endpoint

    def _accept(self, endpoint: IngressEndpoint, body: bytes, headers: HeaderItems,
                remote_addr: str | None) -> Receipt:
        try:
            self._check(endpoint, body, remote_addr)
            lowered = {k.lower(): v for k, v in headers.items()}
            scheme = endpoint.scheme
            signatures.verify(scheme.name, body, lowered, endpoint.secrets, endpoint.options)
            payload = scheme.parse(body, lowered)
        except HubError:
            self.counters.add(endpoint.id, "rejected_count")
            raise
        reply = scheme.handshake(payload)
        if reply is not None:
            return Receipt(None, ignored=True, reply=reply)
        readable = identity.body_for(endpoint.identity, payload, body)
        event_type = identity.event_type(endpoint.identity, scheme, lowered, readable)
        if not _wanted(endpoint, event_type):
            return Receipt(None, ignored=True)
        external_id = identity.external_id(endpoint.identity, scheme, lowered, readable, body)
        self._require_storable(endpoint, external_id, event_type, lowered)
        receipt = self._record(endpoint, external_id, event_type, lowered, body)
        self.counters.add(endpoint.id, "duplicate_count" if receipt.duplicate
                          else "received_count")
        return receipt

    def _require_storable(self, endpoint: IngressEndpoint, external_id: str,
                          event_type: str | None, headers: dict[str, str]) -> None:
        # Refused here, for this sender alone, rather than by the driver inside a batch
        # shared with other requests (issue 9, item 8).
        if pgtext.first_unstorable([external_id, event_type, *headers, *headers.values()]):
            self.counters.add(endpoint.id, "rejected_count")
            raise MalformedBody("the event id, type or a header holds a NUL or an unpaired "
                                "surrogate, which cannot be stored")

    def _check(self, endpoint: IngressEndpoint, body: bytes, remote_addr: str | None) -> None:
        if not _allowed(endpoint, remote_addr):
            raise Forbidden("source address not allowed for this endpoint")
        limit = self._services.settings.webhook_max_body
        if len(body) > limit:
            raise PayloadTooLarge(f"body over the {limit} byte limit")
        if endpoint.rate_limit_per_minute:
            decision = self._limiter.hit(str(endpoint.id),
                                         {"minute": endpoint.rate_limit_per_minute})
            if not decision.allowed:
                raise RateLimited("endpoint over its rate limit",
                                  retry_after=decision.retry_after)

    def _record(self, endpoint: IngressEndpoint, external_id: str, event_type: str | None,
                headers: dict[str, str], body: bytes) -> Receipt:
        event = NewEvent(endpoint.id, endpoint.tenant_id, endpoint.source, external_id,
                         event_type, redact_headers(headers), body)
        try:
            stored = self._writer.submit(event)
        except psycopg.DataError:
            # A value PostgreSQL cannot hold (a NUL character in the event type, say).
            raise MalformedBody("the event holds a value that cannot be stored") from None
        except psycopg.IntegrityError:
            # The endpoint was deleted in the seconds this process had it cached.
            raise NotFound("unknown webhook endpoint") from None
        except DATABASE_DOWN:
            raise ServiceUnavailable("the event store is unavailable; retry later") from None
        return Receipt(stored.id, duplicate=stored.duplicate)

    def store_and_enqueue(self, events: Sequence[NewEvent]) -> Sequence[Stored | BaseException]:
        """Store a batch of events, then enqueue the new ones (the group commit's write).

        Returns one :class:`Stored` or exception per event: an event the database or its
        driver refuses gets its own exception and the others are stored. Raises one of
        :data:`OUTAGE` (for the whole batch) when PostgreSQL cannot take anything.
        """
        metrics.record_ingest_batch(len(events))
        try:
            stored: Sequence[Stored | BaseException] = self._store.add(events)
        except OUTAGE:
            raise
        except Exception:
            if len(events) == 1:
                raise
            # Not an outage, so one of the events is at fault (a value the database or
            # its driver refuses, whatever the exception): it must fail alone, not the
            # other requests of its batch (issue 9, item 8).
            stored = [self._write_alone(event) for event in events]
        self._enqueue([s.id for s in stored if isinstance(s, Stored) and not s.duplicate])
        return stored

    def _write_alone(self, event: NewEvent) -> Stored | BaseException:
        try:
            return self._store.add([event])[0]
        except Exception as exc:  # noqa: BLE001 - this row's outcome, given to its request
            return exc

    def _enqueue(self, event_ids: list[uuid.UUID]) -> None:
        if not event_ids:
            return
        try:
            send_many(self._services.dispatcher, PROCESS_TASK,
                      [{"event_id": str(event_id)} for event_id in event_ids])
        except Exception:
            metrics.record_enqueue_failures(len(event_ids))
            log.warning("%d committed event(s) not enqueued (%s); the sweeper will enqueue "
                        "them", len(event_ids), ", ".join(map(str, event_ids)), exc_info=True)

    def close(self) -> None:
        """Release the event store's connections."""
        self._store.close()

    def clear_cache(self) -> None:
        """Forget cached endpoints (tests; an operator change otherwise waits the TTL)."""
        self._cache.clear()
