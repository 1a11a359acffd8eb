"""``hub.deliveries.send`` and beat's sender of due deliveries."""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.deliveries import sending
from tasks.app import app, services
from tasks.base import HubTask


@app.task(name="hub.deliveries.send", base=HubTask, ignore_result=True, acks_late=True)
def send(delivery_id: str) -> dict[str, Any]:
    """POST one delivery to its subscriber (a no-op if it is not due or already claimed)."""
    return dataclasses.asdict(sending.send_delivery(services(), delivery_id))


@app.task(name="hub.deliveries.send_batch", base=HubTask, ignore_result=True, acks_late=True)
def send_batch(delivery_ids: list[str]) -> list[dict[str, Any]]:
    """POST the deliveries of a batch of events concurrently (no-ops for those not due
    or already claimed)."""
    return [dataclasses.asdict(o) for o in sending.send_deliveries(services(), delivery_ids)]


@app.task(name="hub.maintenance.send_due_deliveries", ignore_result=True)
def send_due_deliveries() -> int:
    """Enqueue deliveries whose retry wait is over or whose message went missing."""
    return sending.send_due(services())
