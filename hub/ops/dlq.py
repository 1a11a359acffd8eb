"""The operator's dead-letter queue (``hub dlq``): list, show, replay, resolve and purge
the dead letters every domain records (:mod:`hub.platform.deadletters`)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from hub.calls import idempotency
from hub.platform.db import filter_clauses
from hub.platform.dispatch import REPLAY_HEADER, Dispatcher
from hub.platform.errors import Conflict, NotFound, OutcomeUnknown, ValidationError
from hub.platform.models import DEAD_LETTER_RESOLUTIONS, DeadLetter, IntegrationLog
from hub.platform.scheduler import utcnow


@dataclass(frozen=True)
class Filters:
    """Which dead letters an operator means; every field optional, all combined (AND)."""

    tenant: str | None = None
    integration: str | None = None
    endpoint_id: uuid.UUID | None = None
    code: str | None = None
    origin: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_replayed: bool = True

    def clauses(self) -> list[Any]:
        pairs = [(self.tenant, DeadLetter.tenant_id), (self.integration, DeadLetter.integration),
                 (self.endpoint_id, DeadLetter.endpoint_id), (self.code, DeadLetter.error_code),
                 (self.origin, DeadLetter.origin)]
        clauses = filter_clauses(pairs, DeadLetter.last_failed_at, self.since, self.until)
        if not self.include_replayed:
            clauses.append(DeadLetter.replayed_at.is_(None))
        return clauses


def list_letters(session: Session, filters: Filters, *, limit: int = 100) -> list[DeadLetter]:
    """Dead letters matching ``filters``, newest failure first."""
    return list(session.scalars(select(DeadLetter).where(*filters.clauses())
                                .order_by(DeadLetter.last_failed_at.desc()).limit(limit)))


def get(session: Session, letter_id: uuid.UUID | str, tenant: str | None = None) -> DeadLetter:
    """One dead letter (scoped to ``tenant`` when given). Raises NotFound."""
    try:
        key = letter_id if isinstance(letter_id, uuid.UUID) else uuid.UUID(str(letter_id))
    except ValueError:
        raise NotFound(f"no dead letter {letter_id!r}") from None
    row = session.get(DeadLetter, key)
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise NotFound(f"no dead letter {letter_id}")
    return row


def describe(row: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A JSON-able view for operators (``full`` adds kwargs and traceback)."""
    view: dict[str, Any] = {
        "id": str(row.id), "tenant": row.tenant_id, "origin": row.origin,
        "task_name": row.task_name, "task_id": row.task_id, "integration": row.integration,
        "endpoint_id": str(row.endpoint_id) if row.endpoint_id else None,
        "error_code": row.error_code, "error": row.error, "attempts": row.attempts,
        "first_failed_at": row.first_failed_at, "last_failed_at": row.last_failed_at,
        "replayed_at": row.replayed_at, "replay_task_id": row.replay_task_id,
        "replay_of": str(row.replay_of) if row.replay_of else None,
        "resolution": None if row.resolution is None else {
            "outcome": row.resolution, "by": row.resolved_by, "at": row.resolved_at,
            "note": row.resolution_note},
    }
    if full:
        view.update(args=row.args, kwargs=row.kwargs, traceback=row.traceback)
    return view


def describe_full(session: Session, row: DeadLetter) -> dict[str, Any]:
    """:func:`describe` with everything (``hub dlq show``): for an OUTCOME_UNKNOWN call,
    ``sent`` (the request that may have reached the provider: method, redacted URL,
    when, its audit row); and where the letter's last replay stands: ``replay.outcome`` is ``dead_lettered`` (with the id of the
    new letter it became), else, for a call, the outcome of the replay's latest
    audited attempt (``success``, or ``failed``/``circuit_open`` while it retries),
    ``pending`` when nothing is recorded yet."""
    view = describe(row, full=True)
    view["sent"] = _sent(session, row) if row.error_code == OutcomeUnknown.code else None
    if row.replay_task_id is None:
        view["replay"] = None
        return view
    again = session.scalar(select(DeadLetter.id).where(DeadLetter.replay_of == row.id)
                           .order_by(DeadLetter.created_at.desc()).limit(1))
    latest = session.scalar(select(IntegrationLog.outcome)
                            .where(IntegrationLog.task_id == row.replay_task_id)
                            .order_by(IntegrationLog.started_at.desc()).limit(1))
    view["replay"] = {"task_id": row.replay_task_id, "at": row.replayed_at,
                      "outcome": "dead_lettered" if again else latest or "pending",
                      "dead_letter_id": str(again) if again else None}
    return view


def _sent(session: Session, row: DeadLetter) -> dict[str, Any] | None:
    """What an OUTCOME_UNKNOWN call sent and when: its audit row (redacted)."""
    found = session.execute(
        select(IntegrationLog.id, IntegrationLog.method, IntegrationLog.url,
               IntegrationLog.started_at, IntegrationLog.error)
        .where(IntegrationLog.task_id == row.task_id,
               IntegrationLog.outcome == "outcome_unknown")
        .order_by(IntegrationLog.started_at.desc()).limit(1)).first()
    if found is None:
        return None
    return {"log_id": str(found.id), "method": found.method, "url": found.url,
            "at": found.started_at, "why": found.error}


def replay(factory: sessionmaker[Session], dispatcher: Dispatcher, filters: Filters, *,
           queue: str, dry_run: bool = False, rate: float | None = None,
           limit: int = 1000) -> list[dict[str, Any]]:
    """Re-enqueue matching dead letters with their original task name and arguments on
    ``queue`` (the ``replay`` queue, apart from live traffic), oldest first.

    Each row is claimed with ``FOR UPDATE SKIP LOCKED`` and marked (``replayed_at``,
    ``replay_task_id``) in the same transaction as its send, so two operators
    replaying at once never send one letter twice. ``rate`` caps sends per second.
    ``dry_run`` sends nothing and returns what would be sent. Letters already
    replayed are skipped unless ``filters.include_replayed`` is true.
    """
    with factory() as session:
        candidates = list(session.scalars(select(DeadLetter).where(*_replayable(filters))
                                          .order_by(DeadLetter.last_failed_at).limit(limit)))
    if dry_run:
        return [describe(row) for row in candidates]
    done: list[dict[str, Any]] = []
    for candidate in candidates:
        if done and rate:
            time.sleep(1.0 / rate)  # pacing the operator asked for, not synchronisation
        view = _replay_one(factory, dispatcher, candidate.id, filters, queue)
        if view is not None:
            done.append(view)
    return done


def _replay_one(factory: sessionmaker[Session], dispatcher: Dispatcher, letter_id: uuid.UUID,
                filters: Filters, queue: str) -> dict[str, Any] | None:
    with factory() as session, session.begin():
        # The filters again, under the lock: another operator may have replayed the
        # letter since we listed it.
        row = session.scalars(select(DeadLetter)
                              .where(DeadLetter.id == letter_id, *_replayable(filters))
                              .with_for_update(skip_locked=True)).one_or_none()
        if row is None:
            return None  # being replayed or resolved right now, or already done
        if row.origin == "call" and row.error_code == OutcomeUnknown.code:
            _free_unknown_key(session, row)
        # The header tells the task it is a replay from its first run on: a replay
        # meeting an open circuit waits for it like a retry (issue 9 item 1).
        row.replay_task_id = dispatcher.send(row.task_name, dict(row.kwargs), queue=queue,
                                             headers={REPLAY_HEADER: str(row.id)})
        row.replayed_at = utcnow()
        return describe(row)


def _replayable(filters: Filters) -> list[Any]:
    # A resolved letter is closed, whatever the filters (``--again`` included): one
    # resolved as succeeded reached the provider, and sending it again would write twice.
    return [*filters.clauses(), DeadLetter.resolved_at.is_(None)]


def resolve(session: Session, letter_id: uuid.UUID | str, outcome: str, *, by: str,
            note: str | None = None, tenant: str | None = None) -> DeadLetter:
    """Close an OUTCOME_UNKNOWN call's dead letter once the operator has checked with the
    provider (in ``session``'s transaction), recording ``outcome``, ``by``, the time and
    ``note`` on the letter:

    - ``succeeded``: the provider carried out the write. Its idempotency key stores a
      result saying so (``ok``, no provider data, ``reconciled``), which later calls
      with the key get instead of OUTCOME_UNKNOWN; the letter is never replayed.
    - ``failed``: the provider never got it. The key is freed, so the caller may send
      the write again with it; the letter is closed without sending anything (use
      :func:`replay` instead to have the hub send it).

    Raises NotFound, ValidationError (an outcome not in DEAD_LETTER_RESOLUTIONS) and
    Conflict: for a letter whose error is not OUTCOME_UNKNOWN (its outcome is known:
    replay or purge it), one already resolved, or one already replayed (its replay's
    outcome is what stands: ``hub dlq show``).
    """
    if outcome not in DEAD_LETTER_RESOLUTIONS:
        raise ValidationError(f"outcome must be one of {', '.join(DEAD_LETTER_RESOLUTIONS)}")
    row = get(session, letter_id, tenant)
    session.refresh(row, with_for_update=True)  # one operator at a time, replays included
    _check_resolvable(row)
    kwargs, integration = row.kwargs, str(row.kwargs.get("integration") or "")
    key = kwargs.get("idempotency_key")
    row.resolution, row.resolved_by, row.resolved_at = outcome, by, utcnow()
    row.resolution_note = note
    if row.tenant_id and integration and key:
        if outcome == "failed":
            idempotency.forget_unknown(session, row.tenant_id, integration, str(key))
        else:
            idempotency.settle_reconciled(session, row.tenant_id, integration, str(key),
                                          _reconciled_result(session, row))
    return row


def _check_resolvable(row: DeadLetter) -> None:
    if row.error_code != OutcomeUnknown.code:
        raise Conflict(f"dead letter {row.id} failed with {row.error_code}, not "
                       f"{OutcomeUnknown.code}: its outcome is known; replay or purge it",
                       details={"error_code": row.error_code})
    if row.resolved_at is not None:
        raise Conflict(f"dead letter {row.id} was resolved as {row.resolution} by "
                       f"{row.resolved_by} at {row.resolved_at.isoformat()}")
    if row.replayed_at is not None:
        raise Conflict(f"dead letter {row.id} was replayed at {row.replayed_at.isoformat()}: "
                       "its replay's outcome stands (hub dlq show)")


def _reconciled_result(session: Session, row: DeadLetter) -> dict[str, Any]:
    """The result a key resolved as succeeded gives its later calls: the call's
    envelope without provider data (the answer was lost; ``log_id`` is the audit row
    of the request that reached the provider), saying who reconciled it."""
    kwargs, sent = row.kwargs, _sent(session, row)
    return {"ok": True, "status_code": None, "data": None, "cached": False,
            "integration": kwargs.get("integration"), "operation": kwargs.get("operation"),
            "attempts": row.attempts, "log_id": sent["log_id"] if sent else None,
            "reconciled": {"outcome": row.resolution, "by": row.resolved_by,
                           "at": row.resolved_at.isoformat() if row.resolved_at else None,
                           "note": row.resolution_note, "dead_letter_id": str(row.id)}}


def _free_unknown_key(session: Session, row: DeadLetter) -> None:
    """Replaying an OUTCOME_UNKNOWN call is the operator's word that the provider did
    not get it: its idempotency key, refused since, may run again (issue 9 item 2)."""
    kwargs = row.kwargs
    if row.tenant_id and kwargs.get("integration") and kwargs.get("idempotency_key"):
        idempotency.forget_unknown(session, row.tenant_id, str(kwargs["integration"]),
                                   str(kwargs["idempotency_key"]))


def purge(session: Session, filters: Filters) -> int:
    """Delete matching dead letters (in ``session``'s transaction); return how many."""
    result = session.execute(delete(DeadLetter).where(*filters.clauses()))
    return int(getattr(result, "rowcount", 0) or 0)


def count(session: Session, filters: Filters | None = None) -> int:
    """How many dead letters match (all of them without filters): the DLQ size."""
    clauses = (filters or Filters()).clauses()
    return int(session.scalar(select(func.count()).select_from(DeadLetter).where(*clauses))
               or 0)
