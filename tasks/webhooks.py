"""``hub.webhooks.process`` and the beat sweeper of the webhook inbox."""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.ops import queues
from hub.webhooks import processing
from tasks.app import app, services
from tasks.base import HubTask


class ProcessTask(HubTask):
    """Drops, before counting its receive, a message whose event a batch processed."""

    abstract = True

    def nothing_to_do(self, svc: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> dict[str, Any] | None:
        event_id = kwargs.get("event_id", args[0] if args else None)
        skipped = None if event_id is None else processing.skip_if_done(svc, event_id)
        return None if skipped is None else dataclasses.asdict(skipped)


@app.task(name="hub.webhooks.process", base=ProcessTask, ignore_result=True, acks_late=True)
def process(event_id: str) -> dict[str, Any]:
    """Process one recorded webhook event (a no-op if it is done or claimed)."""
    # A worker looked for the done mark before counting the receive (nothing_to_do);
    # the claim in PostgreSQL decides either way.
    return dataclasses.asdict(processing.process_batch(services(), event_id))


@app.task(name="hub.maintenance.sweep_webhook_events", ignore_result=True)
def sweep_webhook_events() -> int:
    """Re-enqueue pending events nobody picked up and failed events now due."""
    svc = services()
    return processing.sweep(svc, queued=queues.waiting(svc.settings, "webhooks"))
