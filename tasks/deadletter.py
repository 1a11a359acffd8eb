"""``hub.dead_letter.record``: the dead_letter queue's consumer."""

from __future__ import annotations

from typing import Any

from hub.calls.pipeline import DATABASE_UNAVAILABLE
from hub.platform import deadletters
from tasks.app import app, services


# A PostgreSQL outage keeps the letter in the broker (a countdown: 10 s, doubling, at
# most 60 s), retried until PostgreSQL is back, never dropped: it is often a call that
# was given up because of that very outage.
@app.task(name="hub.dead_letter.record", ignore_result=True,
          autoretry_for=DATABASE_UNAVAILABLE, max_retries=None, retry_backoff=10,
          retry_backoff_max=60, retry_jitter=False)
def record(**fields: Any) -> str:
    """Store one dead letter (fields of hub.platform.deadletters.record) and announce it."""
    return str(deadletters.record_and_announce(services(), **fields))
