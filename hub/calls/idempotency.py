"""At-most-once writes: ``call_results`` keyed by (tenant, integration, idempotency key).

The first call with a key *claims* it by inserting a ``running`` row (``INSERT
... ON CONFLICT DO NOTHING``, committed at once): the unique constraint makes
exactly one of two racing workers the owner. The owner calls the provider and
stores the result in the same transaction as its audit row; everyone else gets
that stored result. A ``running`` row whose owner vanished (worker killed) is
taken over after ``stale_after`` seconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.models import CallResult
from hub.platform.scheduler import utcnow

ClaimState = Literal["owned", "done", "busy"]


@dataclass(frozen=True)
class Claim:
    """``owned``: go ahead; ``done``: ``result`` is the stored answer; ``busy``: another
    task is running the same write right now."""

    state: ClaimState
    result: dict[str, Any] | None = None


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
          stale_after: float) -> Claim:
    """Claim ``key`` for ``task_id`` in a transaction of its own (committed on return).

    A retry of the owning task (same task id) gets ``owned`` again.
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
        return _existing(session, key, task_id, stale_after)


def _existing(session: Session, key: Key, task_id: str | None, stale_after: float) -> Claim:
    row = session.scalars(select(CallResult).where(*key.where()).with_for_update()).one()
    if row.status == "succeeded":
        return Claim("done", row.result)
    stale = row.created_at < utcnow() - timedelta(seconds=stale_after)
    if (task_id is not None and row.task_id == task_id) or stale:
        row.task_id, row.created_at = task_id, utcnow()
        return Claim("owned")
    return Claim("busy")


def wait(factory: sessionmaker[Session], key: Key, *, timeout: float,
         poll: float = 0.1) -> dict[str, Any] | None:
    """Poll until the owner of ``key`` stored its result; None when ``timeout`` passes
    first or the owner gave up (its row is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            row = session.scalars(select(CallResult).where(*key.where())).one_or_none()
        if row is None:
            return None
        if row.status == "succeeded":
            return row.result
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)  # polling a row another worker owns; bounded by the deadline


def complete(session: Session, key: Key, result: dict[str, Any]) -> None:
    """Store ``result`` for ``key`` in ``session``'s transaction (with the audit row)."""
    session.execute(update(CallResult).where(*key.where())
                    .values(status="succeeded", result=result, completed_at=utcnow()))


def release(session: Session, key: Key, task_id: str | None) -> None:
    """Give up a claim after a final failure, so a later call with the key may run."""
    session.execute(delete(CallResult).where(*key.where(), CallResult.status == "running",
                                             CallResult.task_id == task_id))
