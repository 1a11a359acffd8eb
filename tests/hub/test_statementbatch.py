"""hub.platform.statementbatch: statements of threads that arrive while a batch is written
commit together in one transaction; each thread gets its own statement's row or error."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import Engine, text

from hub.platform.db import make_autocommit_engine, make_engine
from hub.platform.statementbatch import BatchedStatements, Statement
from tests.hub.test_groupcommit import DEADLINE, wait_until


@pytest.fixture
def probe(settings) -> Iterator[tuple[BatchedStatements, Engine, str]]:  # type: ignore[no-untyped-def]
    """Batched writes to a table of the test's own, and an engine of another pool
    (transactions, not autocommit) to look and to hold locks."""
    writes = BatchedStatements(make_autocommit_engine(settings))
    admin = make_engine(settings)
    table = f"statement_batch_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, xid text)"))
    yield writes, admin, table
    with admin.begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    writes.engine.dispose()
    admin.dispose()


def _insert(table: str) -> str:
    return (f"INSERT INTO {table} VALUES (%(id)s, pg_current_xact_id()::text) "
            "RETURNING xid")


def _rows(engine: Engine, table: str) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT id, xid FROM {table}")).all())


def _behind_a_held_batch(writes: BatchedStatements, admin: Engine, table: str,
                         ids: list[int], *, more: tuple[Statement, ...] = (),
                         ) -> tuple[Future, list[Future]]:
    """Statement 0 is written first and held by a row lock; the inserts of ``ids`` (and
    ``more``) queue up behind it and so form the next batch together."""
    holder = admin.connect()
    holder.execute(text(f"INSERT INTO {table} VALUES (0, 'held')"))
    statements = [(_insert(table), {"id": i}) for i in ids] + list(more)
    pool = ThreadPoolExecutor(len(statements) + 1)
    first = pool.submit(writes.execute, _insert(table), {"id": 0})
    # The first batch waits on the holder's row lock, in PostgreSQL.
    wait_until(lambda: _waiting_on_lock(admin, table), "the first statement to wait")
    later = [pool.submit(writes.execute, sql, params) for sql, params in statements]
    wait_until(lambda: writes._batches.waiting == len(statements), "the others to queue")
    holder.rollback()
    holder.close()
    pool.shutdown(wait=False)
    return first, later


def _waiting_on_lock(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE :insert"), {"insert": f"INSERT INTO {table} %"}).scalar_one())


def test_a_statement_alone_is_committed_when_execute_returns(probe):
    writes, admin, table = probe
    xid = writes.execute(_insert(table), {"id": 1})
    assert _rows(admin, table) == {1: xid}
    # A statement that returns no row gives None.
    assert writes.execute(f"DELETE FROM {table} WHERE id = %(id)s RETURNING id",
                          {"id": 99}) is None


def test_statements_that_wait_together_commit_in_one_transaction(probe):
    writes, admin, table = probe
    first, later = _behind_a_held_batch(writes, admin, table, [1, 2, 3])
    xids = [f.result(timeout=DEADLINE) for f in later]
    assert first.result(timeout=DEADLINE) not in xids
    assert len(set(xids)) == 1  # one transaction for the three
    assert _rows(admin, table) == {0: first.result(), 1: xids[0], 2: xids[0], 3: xids[0]}


def test_a_failing_statement_fails_only_its_own_thread(probe):
    writes, admin, table = probe
    # Two threads insert id 2: the batch is rolled back and each statement runs alone.
    first, later = _behind_a_held_batch(writes, admin, table, [1, 2, 2, 3])
    outcomes = []
    for future in later:
        try:
            outcomes.append(future.result(timeout=DEADLINE))
        except psycopg.errors.UniqueViolation:
            outcomes.append("duplicate")
    assert outcomes.count("duplicate") == 1
    assert set(_rows(admin, table)) == {0, 1, 2, 3}
    assert first.result(timeout=DEADLINE)


def test_a_statement_on_a_connection_that_died_runs_once_more_on_a_new_one(probe):
    writes, admin, table = probe
    pid = writes.execute("SELECT pg_backend_pid()", {})  # the one pooled connection
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    assert writes.execute(_insert(table), {"id": 1})
    assert set(_rows(admin, table)) == {1}
    assert writes.execute("SELECT pg_backend_pid()", {}) != pid


def test_an_error_of_the_whole_batch_reaches_each_statement_without_running_them_again(
        probe, settings):
    _, admin, table = probe
    # A statement bound of 1 s, and a statement of the batch sleeping past it: the
    # whole transaction is cancelled, and nothing is tried again statement by statement.
    writes = BatchedStatements(make_autocommit_engine(
        dataclasses.replace(settings, db_statement_timeout=1.0)))
    try:
        first, later = _behind_a_held_batch(
            writes, admin, table, [1, 2], more=(("SELECT 1 FROM pg_sleep(3)", {}),))
        assert first.result(timeout=DEADLINE)
        for future in later:
            with pytest.raises(psycopg.errors.QueryCanceled):
                future.result(timeout=DEADLINE)
        assert set(_rows(admin, table)) == {0}
    finally:
        writes.engine.dispose()
