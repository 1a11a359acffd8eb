"""At-most-once writes: ``call_results`` keyed by (tenant, integration, idempotency key).

The first call with a key *claims* it by inserting a ``running`` row (``INSERT
... ON CONFLICT DO NOTHING``, committed at once): the unique constraint makes
exactly one of two racing workers the owner. The owner calls the provider and
stores the result in the same transaction as its audit row; everyone else gets
that stored result.

Before the owner's write leaves, the claim is marked *sent* (:func:`mark_sent`, in
the transaction that commits the attempt's ``sending`` audit row), and the mark is
cleared once the provider's answer is recorded. So when the owner vanishes (its
worker killed: the same task id is delivered again, or, for another task, the claim
grew stale after ``stale_after`` seconds) the mark tells whether its write may have
reached the provider (issue 9 item 2):

- not sent: the claim is taken over and the write runs;
- sent, and re-sending is safe (the operation is idempotent, or the provider
  de-duplicates on the Idempotency-Key header): taken over, sent again with the key;
- sent, and re-sending is not safe: the outcome is unknown. The write is never sent
  again blindly: :func:`settle_unknown` marks the key ``unknown``, the call ends as
  OUTCOME_UNKNOWN in the dead-letter table, and later calls with the key are refused
  (``blocked``) until an operator reconciles it: :func:`forget_unknown` (run by
  ``hub dlq replay`` of that letter, or ``hub dlq resolve --outcome failed``) frees
  the key, :func:`settle_reconciled` (``hub dlq resolve --outcome succeeded``)
  stores a result for it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.models import CallResult, Integration
from hub.platform.scheduler import utcnow

ClaimState = Literal["owned", "done", "busy", "unknown", "blocked"]


@dataclass(frozen=True)
class Sent:
    """A write that may have reached the provider: who sent it, when, its audit row."""

    task_id: str | None
    at: datetime | None
    log_id: uuid.UUID | None


@dataclass(frozen=True)
class Claim:
    """``owned``: go ahead; ``done``: ``result`` is the stored answer; ``busy``: another
    task is running the same write right now; ``unknown``: the owner is gone after
    ``sent`` its write and re-sending is not safe (settle it); ``blocked``: an earlier
    write of the key ended with an unknown outcome (``sent``)."""

    state: ClaimState
    result: dict[str, Any] | None = None
    sent: Sent | None = None


@dataclass(frozen=True)
class Key:
    tenant_id: str
    integration_id: uuid.UUID
    idempotency_key: str

    def where(self) -> tuple[Any, ...]:
        return (CallResult.tenant_id == self.tenant_id,
                CallResult.integration_id == self.integration_id,
                CallResult.idempotency_key == self.idempotency_key)


def claim(factory: sessionmaker[Session], key: Key, *, operation: str, task_id: str | None,
          stale_after: float, resend_safe: bool = False) -> Claim:
    """Claim ``key`` for ``task_id`` in a transaction of its own (committed on return).

    A retry of the owning task (same task id, its last attempt answered) gets
    ``owned`` again; see the module docstring for an owner that is gone.
    ``resend_safe``: re-sending this write with the same key cannot do it twice.
    """
    with factory() as session, session.begin():
        inserted = session.execute(
            insert(CallResult)
            .values(tenant_id=key.tenant_id, integration_id=key.integration_id,
                    idempotency_key=key.idempotency_key, operation=operation,
                    status="running", task_id=task_id)
            .on_conflict_do_nothing()
            .returning(CallResult.id)).first()
        if inserted is not None:
            return Claim("owned")
        return _existing(session, key, task_id, stale_after, resend_safe)


def _existing(session: Session, key: Key, task_id: str | None, stale_after: float,
              resend_safe: bool) -> Claim:
    row = session.scalars(select(CallResult).where(*key.where()).with_for_update()).one()
    if row.status == "succeeded":
        return Claim("done", row.result)
    if row.status == "unknown":
        return Claim("blocked", sent=_sent(row))
    stale = row.created_at < utcnow() - timedelta(seconds=stale_after)
    if not ((task_id is not None and row.task_id == task_id) or stale):
        return Claim("busy")
    if row.sent_at is not None and not resend_safe:
        return Claim("unknown", sent=_sent(row))
    row.task_id, row.created_at, row.sent_at, row.sent_log_id = task_id, utcnow(), None, None
    return Claim("owned")


def _sent(row: CallResult) -> Sent:
    return Sent(row.task_id, row.sent_at, row.sent_log_id)


def wait(factory: sessionmaker[Session], key: Key, *, timeout: float,
         poll: float = 0.1) -> dict[str, Any] | None:
    """Poll until the owner of ``key`` stored its result; None when ``timeout`` passes
    first, or the owner gave up (its row is gone) or its outcome is unknown."""
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            row = session.scalars(select(CallResult).where(*key.where())).one_or_none()
        if row is None or row.status == "unknown":
            return None
        if row.status == "succeeded":
            return row.result
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)  # polling a row another worker owns; bounded by the deadline


def mark_sent(session: Session, key: Key, task_id: str | None, log_id: uuid.UUID) -> bool:
    """Record, in ``session``'s transaction, that the owner's write is about to leave
    (its audit row ``log_id``). False when ``task_id`` no longer owns the key (it was
    taken over): the write must not be sent."""
    result = session.execute(
        update(CallResult).where(*key.where(), CallResult.status == "running",
                                 CallResult.task_id.is_not_distinct_from(task_id))
        .values(sent_at=utcnow(), sent_log_id=log_id))
    return bool(getattr(result, "rowcount", 0))


def clear_sent(session: Session, key: Key, task_id: str | None) -> None:
    """The provider's answer to the owner's write is recorded (in ``session``'s
    transaction): a later attempt may send it again (a 5xx is a known failure)."""
    session.execute(
        update(CallResult).where(*key.where(), CallResult.status == "running",
                                 CallResult.task_id.is_not_distinct_from(task_id))
        .values(sent_at=None, sent_log_id=None))


def settle_unknown(session: Session, key: Key, sent: Sent) -> bool:
    """Mark ``key`` ``unknown`` (in ``session``'s transaction) if it still stands as
    ``sent`` describes (its owner; its sending time, when given); False when another
    task settled or took it first."""
    clauses = [*key.where(), CallResult.status == "running",
               CallResult.task_id.is_not_distinct_from(sent.task_id)]
    if sent.at is not None:
        clauses.append(CallResult.sent_at == sent.at)
    result = session.execute(update(CallResult).where(*clauses)
                             .values(status="unknown", completed_at=utcnow()))
    return bool(getattr(result, "rowcount", 0))


def forget_unknown(session: Session, tenant_id: str, integration: str,
                   idempotency_key: str) -> int:
    """Free a key whose write ended with an unknown outcome (an operator reconciled it
    and replays the call); returns how many rows were removed (0 or 1)."""
    result = session.execute(delete(CallResult).where(
        *_unknown(tenant_id, integration, idempotency_key)))
    return int(getattr(result, "rowcount", 0) or 0)


def settle_reconciled(session: Session, tenant_id: str, integration: str,
                      idempotency_key: str, result: dict[str, Any]) -> int:
    """An operator found that a write whose outcome was unknown did reach the provider
    (``hub dlq resolve --outcome succeeded``): the key stores ``result``, which later
    calls with the key get instead of OUTCOME_UNKNOWN. Returns rows changed (0 or 1)."""
    changed = session.execute(update(CallResult)
                              .where(*_unknown(tenant_id, integration, idempotency_key))
                              .values(status="succeeded", result=result, completed_at=utcnow()))
    return int(getattr(changed, "rowcount", 0) or 0)


def _unknown(tenant_id: str, integration: str, idempotency_key: str) -> tuple[Any, ...]:
    """The ``unknown`` row of a key, its integration named as the dead letter names it."""
    integration_ids = select(Integration.id).where(Integration.tenant_id == tenant_id,
                                                   Integration.name == integration)
    return (CallResult.tenant_id == tenant_id, CallResult.idempotency_key == idempotency_key,
            CallResult.integration_id.in_(integration_ids), CallResult.status == "unknown")


def complete(session: Session, key: Key, result: dict[str, Any]) -> None:
    """Store ``result`` for ``key`` in ``session``'s transaction (with the audit row)."""
    session.execute(update(CallResult).where(*key.where())
                    .values(status="succeeded", result=result, completed_at=utcnow(),
                            sent_at=None, sent_log_id=None))


def release(session: Session, key: Key, task_id: str | None) -> None:
    """Give up a claim after a final failure, so a later call with the key may run."""
    session.execute(delete(CallResult).where(
        *key.where(), CallResult.status == "running",
        CallResult.task_id.is_not_distinct_from(task_id)))
