"""The webhook inbox's durable write: one autocommit INSERT per batch of events.

This is the hot path of every provider request, so it talks to psycopg directly
(a prepared statement on a connection from the SQLAlchemy pool) instead of going
through SQLAlchemy's execution layer, which costs more CPU per request than the
whole signature check (docs/benchmarks.md, "Webhook ingest"). The statement is
committed, and fsynced, when it returns: one round trip instead of BEGIN,
INSERT, COMMIT. The intake's group commit (:mod:`hub.platform.groupcommit`) decides what
goes into a batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from hub.platform.config import Settings
from hub.platform.db import bounded, make_engine, on_driver_connection

#: PostgreSQL application_name of the intake's connections (pg_stat_activity).
INTAKE_APPLICATION_NAME = "hub-webhook-intake"

#: Failures that mean "the database cannot take this now": the caller answers 503.
DATABASE_DOWN: tuple[type[Exception], ...] = (psycopg.Error, sa_exc.DBAPIError,
                                              sa_exc.TimeoutError)
#: Of those, the ones that are the server's or the connection's, never one event's (down,
#: unreachable, timed out, pool exhausted): a batch that meets one fails whole at once
#: rather than being written again row by row against a server that is not there.
OUTAGE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError,
                                       sa_exc.OperationalError, sa_exc.InterfaceError,
                                       sa_exc.TimeoutError)

# One event (every request of a sync worker, most of a lightly loaded threaded one).
_INSERT_ONE = """
    INSERT INTO webhook_events (endpoint_id, tenant_id, source, external_id, event_type,
                                headers, body)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (endpoint_id, external_id) DO NOTHING
    RETURNING id, endpoint_id, external_id
"""
_EXISTING_ONE = """
    SELECT id, endpoint_id, external_id FROM webhook_events
    WHERE endpoint_id = %s AND external_id = %s
"""
# A batch: arrays rather than a VALUES list per batch size, so one prepared
# statement serves every size.
_INSERT = """
    INSERT INTO webhook_events (endpoint_id, tenant_id, source, external_id, event_type,
                                headers, body)
    SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::jsonb[], %s::bytea[])
    ON CONFLICT (endpoint_id, external_id) DO NOTHING
    RETURNING id, endpoint_id, external_id
"""
_EXISTING = """
    SELECT id, endpoint_id, external_id FROM webhook_events
    WHERE (endpoint_id, external_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
"""


@dataclass(frozen=True)
class NewEvent:
    """A verified provider event, ready to be stored (headers already redacted)."""

    endpoint_id: uuid.UUID
    tenant_id: str
    source: str
    external_id: str
    event_type: str | None
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Stored:
    """The event's row id; ``duplicate`` when the endpoint had stored it before."""

    id: uuid.UUID
    duplicate: bool


#: Bounds on one intake statement. Providers give up after 10-30 s, and the requests
#: batched behind a stalled INSERT wait with it: better a quick 503 (they retry) than a
#: process whose every thread hangs on a lock or a stuck server.
STATEMENT_TIMEOUT_MS = 10_000
LOCK_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 5


def make_intake_engine(settings: Settings, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS,
                       **options: Any) -> Engine:
    """Autocommit, no pre-ping (a connection killed under us is replaced by
    :meth:`EventStore.add`), and timeouts so a stall answers 503 instead of hanging."""
    connect_args = bounded(statement_timeout=STATEMENT_TIMEOUT_MS / 1000,
                           lock_timeout=lock_timeout_ms / 1000,
                           connect_timeout=CONNECT_TIMEOUT_S,
                           application_name=INTAKE_APPLICATION_NAME)
    return make_engine(settings, pool_pre_ping=False, isolation_level="AUTOCOMMIT",
                       connect_args=connect_args, **options)


class EventStore:
    """Stores events in webhook_events, once per (endpoint, provider event id). Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store ``events`` in one statement, skipping those the endpoint already holds.

        Returns one :class:`Stored` per event, in order; of two events with the same
        key in one call, the second is the first's duplicate. Raises one of
        :data:`DATABASE_DOWN` when PostgreSQL cannot take them; nothing is written then.
        A pooled connection killed by a PostgreSQL restart is replaced and the INSERT,
        idempotent (ON CONFLICT DO NOTHING), runs once more.
        """
        return on_driver_connection(self._engine,
                                    lambda conn: self._insert_or_find(conn, events))

    @staticmethod
    def _insert_or_find(conn: psycopg.Connection[Any],
                        events: Sequence[NewEvent]) -> list[Stored]:
        if len(events) == 1:
            [only] = events
            insert, existing = _INSERT_ONE, _EXISTING_ONE
            params: tuple[Any, ...] = (only.endpoint_id, only.tenant_id, only.source,
                                       only.external_id, only.event_type,
                                       Jsonb(only.headers), only.body)
        else:
            insert, existing = _INSERT, _EXISTING
            params = ([e.endpoint_id for e in events], [e.tenant_id for e in events],
                      [e.source for e in events], [e.external_id for e in events],
                      [e.event_type for e in events], [Jsonb(e.headers) for e in events],
                      [e.body for e in events])
        wanted = {(e.endpoint_id, e.external_id) for e in events}
        ids: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        inserted: set[tuple[uuid.UUID, str]] = set()
        # Twice at most: a duplicate purged by retention between the two statements
        # is simply inserted by the second round.
        for _ in range(2):
            for row_id, endpoint_id, external_id in conn.execute(insert, params, prepare=True):
                ids[(endpoint_id, external_id)] = row_id
                inserted.add((endpoint_id, external_id))
            missing = list(wanted - ids.keys())
            if not missing:
                break
            lookup = (missing[0] if len(events) == 1 else
                      ([k[0] for k in missing], [k[1] for k in missing]))
            for row_id, endpoint_id, external_id in conn.execute(existing, lookup,
                                                                 prepare=True):
                ids[(endpoint_id, external_id)] = row_id
            if len(ids) == len(wanted):
                break
        else:
            raise psycopg.OperationalError("events neither inserted nor found; retry")
        results = []
        for event in events:
            key = (event.endpoint_id, event.external_id)
            results.append(Stored(ids[key], duplicate=key not in inserted))
            inserted.discard(key)  # a second event with this key is a duplicate
        return results

    def close(self) -> None:
        """Release the pool's connections."""
        self._engine.dispose()
