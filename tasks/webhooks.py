"""``hub.webhooks.process`` and the beat sweeper of the webhook inbox."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from kombu.exceptions import ChannelError

from hub.webhooks import processing
from tasks.app import app, services
from tasks.base import HubTask

log = logging.getLogger(__name__)


@app.task(name="hub.webhooks.process", base=HubTask, ignore_result=True, acks_late=True)
def process(event_id: str) -> dict[str, Any]:
    """Process one recorded webhook event (a no-op if it is done or claimed)."""
    return dataclasses.asdict(processing.process_event(services(), event_id))


@app.task(name="hub.maintenance.sweep_webhook_events", ignore_result=True)
def sweep_webhook_events() -> int:
    """Re-enqueue pending events nobody picked up and failed events now due."""
    svc = services()
    return processing.sweep(svc, queued=waiting_messages(svc.settings.queue("webhooks")))


def waiting_messages(queue: str) -> int | None:
    """Messages waiting in ``queue`` as the broker counts them; None if it cannot say."""
    try:
        with app.connection_for_read() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True)
                       .message_count)
    except ChannelError:
        return 0  # the broker has no such queue: nothing waits in it
    except Exception:
        log.warning("could not count the messages waiting in %s", queue, exc_info=True)
        return None
