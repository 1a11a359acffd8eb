"""``hub.dead_letter.record``: the dead_letter queue's consumer."""

from __future__ import annotations

from typing import Any

from hub import deadletter
from tasks.app import app, services


@app.task(name="hub.dead_letter.record", ignore_result=True)
def record(**fields: Any) -> str:
    """Store one dead letter (fields of hub.deadletter.record) and announce it."""
    return str(deadletter.record_and_announce(services(), **fields))
