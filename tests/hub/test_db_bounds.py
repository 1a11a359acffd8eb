"""Statements of the hub's own PostgreSQL pool are time-bounded (HUB_DB_STATEMENT_TIMEOUT,
HUB_DB_LOCK_TIMEOUT, HUB_DB_CONNECT_TIMEOUT): a statement blocked by a lock another
connection holds fails within the bound instead of hanging its worker thread, and
maintenance work gets the larger HUB_DB_MAINTENANCE_STATEMENT_TIMEOUT. Real PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hub.calls import integrations
from hub.dev.embedded import libpq_url
from hub.platform.db import allow_long_statements, make_engine, make_session_factory
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services

#: How long the test's lock holder keeps its lock at most: a statement that waits for
#: it without a bound finishes only then, and the test fails instead of hanging.
HOLD = 15.0


@pytest.fixture
def bounded(settings) -> Iterator[Services]:
    """Services whose engine has short bounds (statements 2 s, lock waits 0.5 s), built
    as every process builds it."""
    svc = Services(dataclasses.replace(settings, db_statement_timeout=2.0,
                                       db_lock_timeout=0.5), RecordingDispatcher())
    yield svc
    svc.close()


class RowLock:
    """Another connection holding ``FOR UPDATE`` on one integration row, released on
    ``release()`` or after HOLD seconds."""

    def __init__(self, settings, tenant: str, name: str) -> None:  # type: ignore[no-untyped-def]
        self.conn = psycopg.connect(libpq_url(settings.database_url))
        self.conn.execute("SELECT id FROM integrations WHERE tenant_id = %s AND name = %s "
                          "FOR UPDATE", (tenant, name))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()

    def _hold(self) -> None:
        self.done.wait(HOLD)
        self.conn.rollback()
        self.conn.close()

    def release(self) -> None:
        self.done.set()
        self.thread.join(10)


def _spec(tenant: str, name: str) -> integrations.IntegrationSpec:
    return integrations.IntegrationSpec(tenant_id=tenant, name=name, adapter="rest",
                                        base_url="https://api.example.com")


def test_a_statement_blocked_by_a_held_lock_fails_within_the_lock_bound(
        sessions, settings, tenant, bounded):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant, "crm"))
    lock = RowLock(settings, tenant, "crm")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError) as caught, \
                bounded.sessions() as session, session.begin():
            integrations.update(session, tenant, "crm", priority=7)
        elapsed = time.monotonic() - started
    finally:
        lock.release()
    assert isinstance(caught.value.orig, psycopg.errors.LockNotAvailable)
    assert elapsed < 5, elapsed  # the bound (0.5 s), not the holder's HOLD (15 s)


def test_a_statement_over_the_bound_is_cancelled(bounded):
    started = time.monotonic()
    with pytest.raises(OperationalError) as caught, bounded.engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(10)"))
    assert isinstance(caught.value.orig, psycopg.errors.QueryCanceled)
    assert time.monotonic() - started < 5


def test_maintenance_work_gets_its_larger_bound_for_its_transaction_only(bounded):
    with bounded.sessions() as session, session.begin():
        allow_long_statements(session, 5.0)
        session.execute(text("SELECT pg_sleep(2.5)"))  # over the 2 s bound, under 5 s
    with pytest.raises(OperationalError), bounded.sessions() as session, session.begin():
        session.execute(text("SELECT pg_sleep(2.5)"))  # the next transaction: 2 s again


def test_the_defaults_bound_every_engine_of_the_pool(settings):
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            shown = {name: session.execute(text(f"SHOW {name}")).scalar_one()
                     for name in ("statement_timeout", "lock_timeout")}
    finally:
        engine.dispose()
    assert shown == {"statement_timeout": "30s", "lock_timeout": "10s"}


def test_the_audit_engines_are_bounded_too(bounded):
    # A call's audit rows go through these (hub.calls.audit): a row blocked behind a
    # lock must fail within the bound, not hold the call's thread.
    for engine, commit in ((bounded.autocommit_engine, "on"), (bounded.async_engine, "off")):
        with engine.connect() as conn:
            shown = {name: conn.execute(text(f"SHOW {name}")).scalar_one()
                     for name in ("statement_timeout", "lock_timeout", "synchronous_commit")}
        assert shown == {"statement_timeout": "2s", "lock_timeout": "500ms",
                         "synchronous_commit": commit}, engine
