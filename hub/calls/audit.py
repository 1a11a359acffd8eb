"""The audit trail: one ``integration_logs`` row per attempt (DESIGN §3).

Everything written here is redacted first (``hub.platform.redaction``): credential
headers and query parameters by name, sensitive JSON fields by name, and every
known credential value wherever it appears. Bodies are truncated.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hub.platform import redaction
from hub.platform.db import filter_clauses
from hub.platform.models import LOG_OUTCOMES, Integration, IntegrationLog
from hub.platform.statementbatch import BatchedStatements

BODY_LIMIT = 4096
ERROR_LIMIT = 2000
#: Outcomes that reached (or may have reached) the provider and therefore cost money.
BILLED_OUTCOMES = frozenset({"success", "failed", "dead_lettered", "outcome_unknown"})
_TABLE = IntegrationLog.__tablename__


@dataclass
class Attempt:
    """What one attempt did, in raw form; :func:`write` redacts it."""

    tenant_id: str
    integration_id: uuid.UUID | None
    operation: str
    outcome: str
    started_at: datetime
    attempt: int = 1
    method: str | None = None
    url: str | None = None
    request_headers: Mapping[str, Any] | None = None
    request_body: bytes | str | None = None
    response_headers: Mapping[str, Any] | None = None
    response_body: bytes | str | None = None
    status_code: int | None = None
    error: str | None = None
    task_id: str | None = None
    idempotency_key: str | None = None
    duration_ms: int | None = None
    reached_provider: bool = False
    secrets: Iterable[str] = field(default_factory=tuple)
    sensitive_fields: Iterable[str] = field(default_factory=tuple)
    failover_from: str | None = None
    failover_reason: str | None = None


def estimated_cost(outcome: str, reached_provider: bool, cost_per_call: Decimal) -> Decimal:
    """``cost_per_call`` for an attempt the provider served, else zero."""
    return cost_per_call if reached_provider and outcome in BILLED_OUTCOMES else Decimal(0)


def values(attempt: Attempt, *, cost_per_call: Decimal = Decimal(0)) -> dict[str, Any]:
    """The redacted column values of the attempt's ``integration_logs`` row.

    Raises ValueError for an outcome outside :data:`hub.platform.models.LOG_OUTCOMES`.
    """
    secrets = list(attempt.secrets)
    return {
        "id": uuid.uuid4(), "tenant_id": attempt.tenant_id,
        "integration_id": attempt.integration_id, "operation": attempt.operation,
        "method": attempt.method, "url": redaction.redact_url(attempt.url, secrets),
        "request_headers": _headers(attempt.request_headers, secrets),
        "request_body": _body(attempt.request_body, attempt, secrets),
        "attempt": attempt.attempt, "task_id": attempt.task_id,
        "idempotency_key": attempt.idempotency_key, "started_at": attempt.started_at,
        "failover_from": attempt.failover_from,
        "failover_reason": _error(attempt.failover_reason, secrets),
        **answer_values(attempt, cost_per_call=cost_per_call, secrets=secrets),
    }


def answer_values(attempt: Attempt, *, cost_per_call: Decimal = Decimal(0),
                  secrets: list[str] | None = None) -> dict[str, Any]:
    """Of :func:`values`, the columns an attempt's outcome sets: what the provider
    answered, the outcome, its error, duration and cost.

    Raises ValueError for an outcome outside :data:`hub.platform.models.LOG_OUTCOMES`.
    """
    if attempt.outcome not in LOG_OUTCOMES:
        raise ValueError(f"unknown outcome {attempt.outcome!r}")
    secrets = list(attempt.secrets) if secrets is None else secrets
    return {
        "response_headers": _headers(attempt.response_headers, secrets),
        "response_body": _body(attempt.response_body, attempt, secrets),
        "status_code": attempt.status_code, "outcome": attempt.outcome,
        "error": _error(attempt.error, secrets), "duration_ms": attempt.duration_ms,
        "estimated_cost": estimated_cost(attempt.outcome, attempt.reached_provider,
                                         cost_per_call),
    }


def write(session: Session, attempt: Attempt, *, cost_per_call: Decimal = Decimal(0),
          ) -> IntegrationLog:
    """Add the attempt's redacted row to ``session`` (flushed, not committed).

    Raises ValueError for an outcome outside :data:`hub.platform.models.LOG_OUTCOMES`.
    """
    row = IntegrationLog(**values(attempt, cost_per_call=cost_per_call))
    session.add(row)
    session.flush()
    return row


def finish(session: Session, log_id: uuid.UUID, attempt: Attempt, *,
           cost_per_call: Decimal = Decimal(0)) -> uuid.UUID:
    """Give the ``sending`` row ``log_id`` the attempt's outcome (in ``session``'s
    transaction); a new row when it is gone. Returns the row's id.

    Raises ValueError for an outcome outside :data:`hub.platform.models.LOG_OUTCOMES`.
    """
    result = session.execute(_finishing(log_id, attempt, cost_per_call))
    if getattr(result, "rowcount", 0):
        return log_id
    return write(session, attempt, cost_per_call=cost_per_call).id


def finish_committing(writes: BatchedStatements, log_id: uuid.UUID, attempt: Attempt, *,
                      cost_per_call: Decimal = Decimal(0)) -> None:
    """:func:`finish` as one statement of ``writes`` (the asynchronously committed
    audit writes): the row was committed durably as ``sending`` before the request
    left, with the request's columns, so only the answer's are set
    (:func:`answer_values`); a new whole row when it is gone."""
    answer = answer_values(attempt, cost_per_call=cost_per_call)
    if writes.execute(_finishing_sql(tuple(answer)),
                      {**_parameters(answer), "finished_id": log_id}) is None:
        row = values(attempt, cost_per_call=cost_per_call)
        writes.execute(_insert_sql(tuple(row)), _parameters(row))


def _finishing(log_id: uuid.UUID, attempt: Attempt, cost_per_call: Decimal) -> Any:
    # Stamped with this transaction: the usage roll-up skips `sending` rows and counts
    # each row by the transaction that gave it its outcome (hub.ops.usage).
    # Only the answer's columns, as finish_committing sets them: the request's went in
    # with the `sending` row.
    return (update(IntegrationLog).where(IntegrationLog.id == log_id)
            .values(**answer_values(attempt, cost_per_call=cost_per_call),
                    txid=func.pg_current_xact_id()))


def mark_unknown(session: Session, *, error: str, task_id: str | None = None,
                 log_id: uuid.UUID | None = None) -> int:
    """Rows still ``sending`` (of ``task_id``, or the row ``log_id``) become
    ``outcome_unknown`` with ``error`` (their worker died before the answer was
    recorded); returns how many."""
    clause = IntegrationLog.id == log_id if log_id is not None \
        else IntegrationLog.task_id == task_id
    result = session.execute(update(IntegrationLog)
                             .where(clause, IntegrationLog.outcome == "sending")
                             .values(outcome="outcome_unknown", error=error,
                                     txid=func.pg_current_xact_id()))
    return int(getattr(result, "rowcount", 0) or 0)


def count_attempts(session: Session, task_id: str, outcomes: Iterable[str], *,
                   orphaned: str) -> int:
    """How many rows of ``task_id`` have one of ``outcomes``, counting (and turning into
    ``outcome_unknown``, with the error ``orphaned``) the rows it left ``sending``: run
    when the task is delivered again, so those requests' workers are gone. One
    statement (a data-modifying CTE), in ``session``'s transaction."""
    stuck = (update(IntegrationLog)
             .where(IntegrationLog.task_id == task_id, IntegrationLog.outcome == "sending")
             .values(outcome="outcome_unknown", error=orphaned,
                     txid=func.pg_current_xact_id())
             .returning(IntegrationLog.id).cte("orphaned"))
    # The SELECT sees the rows as they were before the CTE's UPDATE: add its count.
    over = select(func.count()).select_from(IntegrationLog).where(
        IntegrationLog.task_id == task_id, IntegrationLog.outcome.in_(tuple(outcomes)))
    total = select(over.scalar_subquery()
                   + select(func.count()).select_from(stuck).scalar_subquery())
    return int(session.scalar(total) or 0)


def insert_counting_attempts(writes: BatchedStatements, row: dict[str, Any], *,
                             counted: Sequence[str] = ()) -> int:
    """INSERT ``row`` (from :func:`values`) as one statement of ``writes`` (the
    asynchronously committed audit writes) and return its attempt number.

    With ``counted`` outcomes and a ``task_id``, the number is at least one more than
    the task's rows already audited with those outcomes, computed by the INSERT
    itself: a retry resent from PostgreSQL under its task id keeps counting without
    a query of its own. Raises what the database raises.
    """
    return _insert_returning_attempt(writes, row, counted=counted)


def insert_sending(writes: BatchedStatements, row: dict[str, Any], *,
                   counted: Sequence[str] = (), orphaned: str = "") -> int:
    """INSERT the ``sending`` row ``row`` (from :func:`values`) as one statement of
    ``writes`` (committed synchronously: durable when this returns) and return its
    attempt number.

    With ``counted`` outcomes and a ``task_id``, the same statement does what
    :func:`count_attempts` does in a session: the task's rows still ``sending``
    become ``outcome_unknown`` (error ``orphaned``), and the number is at least one
    more than the task's rows with ``counted`` outcomes, those included. One round
    trip instead of a transaction of three. Raises what the database raises.
    """
    return _insert_returning_attempt(writes, row, counted=counted, orphaned=orphaned)


def _insert_returning_attempt(writes: BatchedStatements, row: dict[str, Any], *,
                              counted: Sequence[str], orphaned: str | None = None) -> int:
    # Straight through psycopg (hub.platform.statementbatch): SQLAlchemy's execution of
    # a 21-column row cost more CPU than the round trip (docs/benchmarks.md, issue 10).
    counting = bool(counted) and row["task_id"] is not None
    statement = _insert_sql(tuple(row), counting=counting,
                            orphaning=counting and orphaned is not None)
    params = _parameters(row)
    if counting:
        # The task id again under a name of its own: PostgreSQL deduces one type per
        # parameter, and the column's (varchar) differs from a comparison's (text).
        params.update(counted=list(counted), counted_task=row["task_id"],
                      orphaned_error=orphaned)
    return int(writes.execute(statement, params))  # RETURNING of a one-row INSERT


def _parameters(row: dict[str, Any]) -> dict[str, Any]:
    # Only the JSON columns take dicts (the header maps).
    return {k: Jsonb(v) if isinstance(v, dict) else v for k, v in row.items()}


@functools.cache
def _insert_sql(columns: tuple[str, ...], *, counting: bool = False,
                orphaning: bool = False) -> str:
    """The INSERT of one audit row of ``columns`` (named parameters), returning its
    attempt number; ``counting``: the number is at least one more than the task's
    rows (parameter ``counted_task``) with the outcomes of parameter ``counted``;
    ``orphaning``: the task's rows still ``sending`` first become ``outcome_unknown``
    (error ``orphaned_error``), and count."""
    names = [c for c in columns if c != "attempt"] if counting else list(columns)
    placeholders = [f"%({c})s" for c in names]
    head = ""
    if counting:
        prior = (f"(SELECT count(*) FROM {_TABLE} WHERE task_id = %(counted_task)s"
                 " AND outcome = ANY(%(counted)s))")
        lost = " + (SELECT count(*) FROM orphaned)" if orphaning else ""
        names.append("attempt")
        placeholders.append(f"greatest(%(attempt)s, {prior}{lost} + 1)")
    if orphaning:
        # The subquery above sees the rows as they were before this UPDATE: its own
        # count is added.
        head = (f"WITH orphaned AS (UPDATE {_TABLE} SET outcome = 'outcome_unknown',"
                " error = %(orphaned_error)s, txid = pg_current_xact_id()"
                " WHERE task_id = %(counted_task)s AND outcome = 'sending' RETURNING id) ")
    return (f"{head}INSERT INTO {_TABLE} ({', '.join(names)}) "
            f"VALUES ({', '.join(placeholders)}) RETURNING attempt")


@functools.cache
def _finishing_sql(columns: tuple[str, ...]) -> str:
    # Stamped with this transaction: the usage roll-up skips `sending` rows and counts
    # each row by the transaction that gave it its outcome (hub.ops.usage).
    assignments = ", ".join(f"{c} = %({c})s" for c in columns)
    return (f"UPDATE {_TABLE} SET {assignments}, txid = pg_current_xact_id() "
            "WHERE id = %(finished_id)s RETURNING id")


def _headers(headers: Mapping[str, Any] | None, secrets: list[str]) -> dict[str, str] | None:
    if headers is None:
        return None
    return {k: redaction.redact_text(v, secrets) or ""
            for k, v in redaction.redact_headers(headers).items()}


def _body(body: bytes | str | None, attempt: Attempt, secrets: list[str]) -> str | None:
    return redaction.redact_body(body, fields=attempt.sensitive_fields, secrets=secrets,
                                 limit=BODY_LIMIT)


def _error(error: str | None, secrets: list[str]) -> str | None:
    if error is None:
        return None
    return redaction.truncate(redaction.redact_text(error, secrets) or "", ERROR_LIMIT)


# --- reading the trail (``hub logs``) ---------------------------------------------------------

@dataclass(frozen=True)
class LogFilters:
    tenant: str | None = None
    integration_id: uuid.UUID | None = None
    operation: str | None = None
    outcome: str | None = None
    task_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        pairs = [(self.tenant, IntegrationLog.tenant_id),
                 (self.integration_id, IntegrationLog.integration_id),
                 (self.operation, IntegrationLog.operation),
                 (self.outcome, IntegrationLog.outcome), (self.task_id, IntegrationLog.task_id)]
        return filter_clauses(pairs, IntegrationLog.started_at, self.since, self.until)


def query(session: Session, filters: LogFilters, *, limit: int = 100) -> list[IntegrationLog]:
    """Audit rows matching ``filters``, newest first."""
    return list(session.scalars(select(IntegrationLog).where(*filters.clauses())
                                .order_by(IntegrationLog.started_at.desc()).limit(limit)))


def integration_names(session: Session, rows: list[IntegrationLog]) -> dict[uuid.UUID, str]:
    """The names of the integrations ``rows`` belong to (a deleted one has none)."""
    ids = {r.integration_id for r in rows if r.integration_id is not None}
    if not ids:
        return {}
    found = session.execute(select(Integration.id, Integration.name)
                            .where(Integration.id.in_(ids)))
    return {key: name for key, name in found}


def describe(row: IntegrationLog, *, full: bool = False,
             names: dict[uuid.UUID, str] | None = None) -> dict[str, Any]:
    """A JSON-able view of an (already redacted) audit row; ``full`` adds headers/bodies,
    ``names`` (:func:`integration_names`) the integration's name."""
    view: dict[str, Any] = {
        "id": str(row.id), "tenant": row.tenant_id,
        "integration": (names or {}).get(row.integration_id) if row.integration_id else None,
        "integration_id": str(row.integration_id) if row.integration_id else None,
        "operation": row.operation, "method": row.method, "url": row.url,
        "status_code": row.status_code, "outcome": row.outcome, "error": row.error,
        "attempt": row.attempt, "task_id": row.task_id, "idempotency_key": row.idempotency_key,
        "duration_ms": row.duration_ms, "estimated_cost": str(row.estimated_cost),
        "started_at": row.started_at,
        "failover_from": row.failover_from, "failover_reason": row.failover_reason,
    }
    if full:
        view.update(request_headers=row.request_headers, request_body=row.request_body,
                    response_headers=row.response_headers, response_body=row.response_body)
    return view
