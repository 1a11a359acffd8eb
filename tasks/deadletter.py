"""``hub.dead_letter.record``: the dead_letter queue's consumer."""

from __future__ import annotations

from typing import Any

from hub.platform import deadletters
from tasks.app import app, services


@app.task(name="hub.dead_letter.record", ignore_result=True)
def record(**fields: Any) -> str:
    """Store one dead letter (fields of hub.platform.deadletters.record) and announce it."""
    return str(deadletters.record_and_announce(services(), **fields))
