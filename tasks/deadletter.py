"""``hub.dead_letter.record``: the dead_letter queue's consumer."""

from __future__ import annotations

from typing import Any

from celery import states

from hub.calls.pipeline import DATABASE_UNAVAILABLE, CallFailed
from hub.platform import deadletters
from tasks.app import app, services


# A PostgreSQL outage keeps the letter in the broker (a countdown: 10 s, doubling, at
# most 60 s), retried until PostgreSQL is back, never dropped: it is often a call that
# was given up because of that very outage.
@app.task(name="hub.dead_letter.record", ignore_result=True,
          autoretry_for=DATABASE_UNAVAILABLE, max_retries=None, retry_backoff=10,
          retry_backoff_max=60, retry_jitter=False)
def record(caller_failure: dict[str, Any] | None = None, **fields: Any) -> str:
    """Store one dead letter (fields of hub.platform.deadletters.record) and announce it.

    ``caller_failure``: the envelope a call given up during a PostgreSQL outage failed
    with, which its worker could not store; stored here as the call's result (the same
    FAILURE its caller would have read), so the caller sees DEAD_LETTERED, not PENDING.
    """
    letter = deadletters.record_and_announce(services(), **fields)
    task_id = fields.get("task_id")
    if caller_failure is not None and task_id:
        app.backend.store_result(task_id, CallFailed(caller_failure), states.FAILURE)
    return str(letter)
