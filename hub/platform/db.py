"""Engine and session factory.

The engine is built from settings by the process that owns it (worker, web app,
CLI) and passed down; nothing here is a module-level singleton.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.config import Settings

T = TypeVar("T")


def bounded(*, statement_timeout: float, lock_timeout: float, connect_timeout: float,
            **connect_args: object) -> dict[str, object]:
    """``connect_args`` that bound every statement of an engine's connections, in
    seconds (0: no bound): PostgreSQL's ``statement_timeout`` and ``lock_timeout``
    set for the session at connect, and libpq's ``connect_timeout``. A statement over
    its bound fails (``QueryCanceled``, ``LockNotAvailable``: OperationalError)."""
    options = " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in (
        ("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout))
        if seconds > 0)
    args: dict[str, object] = dict(connect_args)
    if options:  # after the caller's own ``options``, if any
        args["options"] = " ".join(o for o in (str(args.get("options", "")), options) if o)
    if connect_timeout > 0:
        args["connect_timeout"] = max(1, math.ceil(connect_timeout))
    return args


def make_engine(settings: Settings, **kwargs: object) -> Engine:
    """A pooled engine for ``settings.database_url``.

    ``pool_pre_ping`` lets a process survive a PostgreSQL restart: a dead pooled
    connection is replaced instead of failing the next task. Statements, lock waits
    and connects are bounded by HUB_DB_STATEMENT_TIMEOUT, HUB_DB_LOCK_TIMEOUT and
    HUB_DB_CONNECT_TIMEOUT (:func:`hub_bounds`) unless the caller passes its own
    ``connect_args``; work that legitimately runs longer raises its own bound for its
    transaction (:func:`allow_long_statements`).
    """
    options: dict[str, object] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}
    if "poolclass" in kwargs:  # sizes belong to the default QueuePool only
        options = {"pool_pre_ping": True}
    options["connect_args"] = hub_bounds(settings)
    options.update(kwargs)
    return create_engine(settings.database_url, **options)


def hub_bounds(settings: Settings, **connect_args: object) -> dict[str, object]:
    """:func:`bounded` by the hub's own settings (HUB_DB_STATEMENT_TIMEOUT,
    HUB_DB_LOCK_TIMEOUT, HUB_DB_CONNECT_TIMEOUT): every pool of the hub's but the
    webhook intake's, which keeps tighter bounds of its own."""
    return bounded(statement_timeout=settings.db_statement_timeout,
                   lock_timeout=settings.db_lock_timeout,
                   connect_timeout=settings.db_connect_timeout, **connect_args)


def allow_long_statements(session: Session, seconds: float) -> None:
    """Raise the statement bound of ``session``'s current transaction only (0: none),
    for maintenance work that legitimately runs long (retention, usage roll-up)."""
    session.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                    {"ms": str(round(seconds * 1000))})


def make_async_commit_engine(settings: Settings, **kwargs: object) -> Engine:
    """An engine for rows a crash of PostgreSQL itself may lose (audit rows).

    Autocommit: a statement alone commits by itself (one round trip, no BEGIN or
    COMMIT), those of a batch together (:mod:`hub.platform.statementbatch`), and
    asynchronously (``synchronous_commit = off``: the commit returns
    before the WAL is flushed, which PostgreSQL does within 3 x wal_writer_delay,
    0.6 s by default). A worker crash loses nothing: the row is committed in the
    server. A crash of the server loses at most the rows of that last fraction of a
    second, and none that precede a synchronous commit of the same server, since the
    WAL is flushed in order. No pre-ping either: a connection that died is
    discarded on its first error, and callers run once more
    (:func:`on_driver_connection`). Bounded like :func:`make_engine`'s
    (HUB_DB_*_TIMEOUT).
    """
    return _statement_engine(settings, kwargs, options="-c synchronous_commit=off")


def make_autocommit_engine(settings: Settings, **kwargs: object) -> Engine:
    """An engine for single statements that must be durable when they return (the
    ``sending`` audit row committed before a write leaves): autocommit, a statement
    alone committing by itself (one round trip, no BEGIN or COMMIT), those of a batch
    together (:mod:`hub.platform.statementbatch`), synchronously as PostgreSQL's
    default is. No pre-ping (a round trip per use): a connection that
    died is discarded on its first error, and callers run once more
    (:func:`on_driver_connection`).
    Bounded like :func:`make_engine`'s (HUB_DB_*_TIMEOUT): a write waits for no lock
    or overloaded server longer than that before it is sent.
    """
    return _statement_engine(settings, kwargs)


def _statement_engine(settings: Settings, kwargs: dict[str, object],
                      **connect_args: object) -> Engine:
    """The pool of :func:`make_autocommit_engine` and :func:`make_async_commit_engine`."""
    options: dict[str, object] = {
        # Written through hub.platform.statementbatch: one batch at a time, so one
        # connection serves a whole worker process (the second stands in while a dead
        # one is replaced). Kept open: a connection costs PostgreSQL a process.
        "pool_size": 1, "max_overflow": 1, "isolation_level": "AUTOCOMMIT",
        "connect_args": hub_bounds(settings, **connect_args)}
    options.update(kwargs)
    return create_engine(settings.database_url, **options)


class ConnectionLost(psycopg.OperationalError):
    """A pooled connection died (PostgreSQL restarted) twice in a row; discarded."""


def on_driver_connection(engine: Engine, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """``work(conn)`` on the psycopg connection of one of ``engine``'s pooled
    connections, for hot paths where SQLAlchemy's execution layer costs more CPU than
    the statement (the webhook intake, the audit rows of a call). ``engine`` must be
    autocommit: nothing is committed here.

    Optimistic disconnect handling instead of a pre-ping round trip per use: a pooled
    connection found dead (a PostgreSQL restart since it was opened) is discarded and
    ``work`` runs once more on a new one; a second dead one raises ConnectionLost.
    """
    for last in (False, True):
        pooled = engine.raw_connection()
        try:
            conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
            try:
                return work(conn)
            except psycopg.OperationalError as exc:
                if not conn.closed:
                    raise
                pooled.invalidate(exc)
                if last:
                    raise ConnectionLost(str(exc)) from exc
        finally:
            pooled.close()
    raise AssertionError("unreachable")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows returned by a committed unit of work stay readable.
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    """Raise if PostgreSQL cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def filter_clauses(equal: Iterable[tuple[Any, Any]], time_column: Any,
                   since: datetime | None, until: datetime | None) -> list[Any]:
    """WHERE clauses of an operator filter: ``column == value`` for every
    ``(value, column)`` pair whose value is set, and ``since <= time_column < until``."""
    clauses: list[Any] = [column == value for value, column in equal if value is not None]
    if since is not None:
        clauses.append(time_column >= since)
    if until is not None:
        clauses.append(time_column < until)
    return clauses


def on_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once ``session`` commits; forget it if the session rolls back."""

    def _run(_session: Session) -> None:
        callback()

    def _forget(_session: Session) -> None:
        if event.contains(session, "after_commit", _run):
            event.remove(session, "after_commit", _run)

    event.listen(session, "after_commit", _run, once=True)
    event.listen(session, "after_rollback", _forget, once=True)
