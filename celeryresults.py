"""The worker's writer of ``hub.call`` results: Celery's database table, written lean.

Clients read results exactly as README shows, with Celery's stock SQLAlchemy
backend (``backend="db+postgresql+psycopg://..."``): the table, its columns and
the encoded values are Celery's own (``celery_taskmeta``, JSON-encoded result,
args and kwargs with ``result_extended``). Only the worker's *write* differs
from :class:`celery.backends.database.DatabaseBackend` (issue 10):

- the stock backend opens a new PostgreSQL connection for every result outside
  a prefork child (``NullPool`` unless forked, DESIGN §10: ~50 results/s under
  the threads pool); here one pooled engine serves every thread;
- the stock backend spends a SELECT, a locking SELECT, an INSERT and a COMMIT
  per result; here results of tasks finishing at the same moment share one
  ``INSERT ... ON CONFLICT (task_id) DO UPDATE`` batch and one commit (group
  commit, :mod:`hub.platform.statementbatch`), a result written alone is one
  autocommitted statement. The upsert keeps the stock rule that a stored SUCCESS is
  never overwritten by a later write of the same task; two writes of one task in a
  batch apply in order.

A result is committed before ``store_result`` returns, so before the task's
message is acknowledged (``acks_late``), as with the stock backend. Lives at the
top level (not in ``tasks/``) because every process that loads ``celeryconfig``
may instantiate the backend, the web process included (DESIGN §2).
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cached_property
from typing import Any

import psycopg
from celery import states
from celery.backends.database import DatabaseBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import ensure_bytes
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc

from hub.platform.statementbatch import BatchedStatements

log = logging.getLogger(__name__)

#: A result write that failed because PostgreSQL is unavailable.
UNAVAILABLE = (BackendStoreError, sa_exc.OperationalError, sa_exc.InterfaceError,
               sa_exc.TimeoutError, psycopg.OperationalError)

#: Results written by one statement at most.
MAX_BATCH = 64
#: Connections of the writer's pool: with group commit a few serve any concurrency.
POOL_SIZE = 1
POOL_OVERFLOW = 2

_COLUMNS = ("task_id", "status", "result", "date_done", "traceback", "children", "name",
            "args", "kwargs", "worker", "retries", "queue", "stamps")


class HubDatabaseBackend(DatabaseBackend):
    """Celery's database backend whose ``_store_result`` is one pooled, batched upsert.

    Reading (``get``, ``AsyncResult.state``) is the stock implementation.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One instance for every thread of a worker (Celery otherwise builds a backend
        # per thread, which would mean a pool and a batch queue per thread): the
        # writer is a pooled engine and a group commit, both thread-safe, and the
        # stock reading path opens a session per call.
        self.thread_safe = True
        self._statements: BatchedStatements | None = None
        self._writer_lock = threading.Lock()
        self._pid: int | None = None

    # --- the write path -------------------------------------------------------------

    def mark_as_retry(self, task_id: str, exc: Any, traceback: Any = None,
                      request: Any = None, store_result: bool = True,
                      state: str = states.RETRY) -> Any:
        """Store RETRY, or log that PostgreSQL could not take it. The retry itself is
        already sent; RETRY only informs a caller who looks. Raising here (a PostgreSQL
        outage) made Celery's tracer fail the task's run outside its body: under the
        threads pool the message was then never acknowledged, held a prefetch slot for
        the life of the worker, and was run again when the worker restarted."""
        try:
            return super().mark_as_retry(task_id, exc, traceback=traceback, request=request,
                                         store_result=store_result, state=state)
        except UNAVAILABLE as error:
            log.warning("task %s: RETRY not stored, PostgreSQL unavailable (%s)", task_id,
                        type(error).__name__)
            return None

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> None:
        self._writer().execute(self._upsert_sql,
                               self._row(task_id, result, state, traceback, request))

    def _row(self, task_id: str, result: Any, state: str, traceback: Any,
             request: Any) -> dict[str, Any]:
        # The same values the stock ``_update_result`` sets, column by column.
        meta = self._get_result_meta(result=ensure_bytes(self.encode(result)), state=state,
                                     traceback=traceback, request=request,
                                     format_date=False, encode=True)
        row = {column: meta.get(column) for column in _COLUMNS}
        row["task_id"] = task_id
        children = meta.get("children")
        row["children"] = ensure_bytes(self.encode(children)) if children else None
        stamped = meta.get("stamped_headers")
        row["stamps"] = ensure_bytes(self.encode({
            "stamped_headers": stamped,
            "stamps": {h: meta.get(h) for h in stamped if h in meta}})) if stamped else None
        return row

    @cached_property
    def _upsert_sql(self) -> str:
        # Built once: it was rebuilt (a dozen joins) for every result stored.
        table = self.task_cls.__table__
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        sequence = f"{table.schema}.task_id_sequence" if table.schema else "task_id_sequence"
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "task_id")
        values = ", ".join(f"%({c})s" for c in _COLUMNS)
        return (f"INSERT INTO {name} (id, {', '.join(_COLUMNS)}) "
                f"VALUES (nextval('{sequence}'), {values}) "
                f"ON CONFLICT (task_id) DO UPDATE SET {updates} "
                f"WHERE {name}.status <> '{states.SUCCESS}' RETURNING id")

    def _writer(self) -> BatchedStatements:
        """The batched writer of this process (a new one after a fork)."""
        with self._writer_lock:
            if self._statements is None or self._pid != os.getpid():
                # The stock session creates the tables (and added columns) on first use.
                self.ResultSession().close()
                # Its own sizes; the configured bounds (celeryconfig's connect_args).
                # Autocommit and no pre-ping: BatchedStatements commits a batch in one
                # transaction and runs it once more on a connection found dead.
                engine = create_engine(
                    self.url, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE,
                    max_overflow=POOL_OVERFLOW,
                    connect_args=self.engine_options.get("connect_args", {}))
                self._statements = BatchedStatements(engine, max_batch=MAX_BATCH)
                self._pid = os.getpid()
            return self._statements
