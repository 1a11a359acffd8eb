"""Many threads' single statements committed together (group commit, one level down).

A call's audit rows and its result are single statements, each committed on its own:
the ``sending`` row synchronously before the request leaves, the answer asynchronously
after, the result synchronously before the message is acknowledged. Under load the
64 threads of a worker process write them at nearly the same moments, and a commit
each costs the worker a pool checkout, a round trip and the GIL handed back and forth
per statement, and PostgreSQL a transaction per row. :class:`BatchedStatements` runs
whatever statements are waiting (:class:`hub.platform.groupcommit.GroupCommit`) in one
pipelined transaction: a third of the worker CPU per row when 64 threads write at
once (tests/bench/bench_statementbatch.py, docs/benchmarks.md issue 10 round 6), and
the single statement of before when a thread writes alone.

A statement is durable when :meth:`BatchedStatements.execute` returns, as durable as
its engine commits (synchronously, or ``synchronous_commit = off``). A statement's own
fault (its values, a deadlock) does not fail the others: the batch is rolled back and
each statement run on its own, so each thread gets its own result or error. Any other
error (a bound hit, PostgreSQL gone) is every statement's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Engine

from hub.platform.db import on_driver_connection
from hub.platform.groupcommit import GroupCommit

#: One statement to run: its SQL (named parameters, ending in RETURNING) and values.
Statement = tuple[str, Mapping[str, Any]]
#: Errors of one statement of a batch (its values, or a deadlock between two batches):
#: the others are run again without it.
ONE_STATEMENTS_FAULT = (psycopg.IntegrityError, psycopg.DataError,
                        psycopg.errors.TransactionRollback)


class BatchedStatements:
    """Runs statements on ``engine`` (autocommit), those of concurrent threads in one
    transaction. Each statement must return at most one row (``RETURNING``)."""

    def __init__(self, engine: Engine, *, max_batch: int = 64) -> None:
        self.engine = engine
        self._batches: GroupCommit[Statement, Any] = GroupCommit(self._write,
                                                                 max_batch=max_batch)

    def execute(self, sql: str, params: Mapping[str, Any]) -> Any:
        """Run ``sql`` with ``params``, committed when this returns; the first column
        of the row it returned, or None when it returned none. Raises what the
        database raises for this statement."""
        return self._batches.submit((sql, params))

    def _write(self, batch: Sequence[Statement]) -> list[Any]:
        if len(batch) == 1:
            return [self._alone(batch[0])]
        try:
            return on_driver_connection(self.engine, lambda conn: _together(conn, batch))
        except ONE_STATEMENTS_FAULT:
            # Rolled back whole: each statement again on its own, so that only the
            # failing one fails. Any other error (PostgreSQL down, a statement or lock
            # bound hit) is every statement's: raised to all, not tried 64 times over.
            outcomes: list[Any] = []
            for statement in batch:
                try:
                    outcomes.append(self._alone(statement))
                except psycopg.Error as exc:
                    outcomes.append(exc)
            return outcomes

    def _alone(self, statement: Statement) -> Any:
        return execute_alone(self.engine, *statement)


def execute_alone(engine: Engine, sql: str, params: Mapping[str, Any]) -> Any:
    """``sql`` as one autocommitted, prepared statement on a pooled connection of
    ``engine``, batched with nothing; the first column of the row it returned, or None."""

    def run(conn: psycopg.Connection[Any]) -> Any:
        row = conn.execute(sql, params, prepare=True).fetchone()
        return None if row is None else row[0]

    return on_driver_connection(engine, run)


def _together(conn: psycopg.Connection[Any], batch: Sequence[Statement]) -> list[Any]:
    """``batch`` in one transaction on ``conn``: one pipelined executemany per run of
    statements with the same SQL."""
    found: list[Any] = []
    with conn.transaction():
        cursor = conn.cursor()
        for sql, statements in itertools.groupby(batch, key=lambda s: s[0]):
            cursor.executemany(sql, [params for _, params in statements], returning=True)
            while True:
                row = cursor.fetchone()
                found.append(None if row is None else row[0])
                if not cursor.nextset():
                    break
    return found
