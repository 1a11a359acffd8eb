"""Keep a live worker's messages its own on a Redis broker (issue 9, item 3).

kombu's Redis transport gives a message out again once it has been unacknowledged
for ``visibility_timeout`` seconds, whether its worker died or is still busy with
it: it cannot tell the two apart (DESIGN §10). The threads pool (``HUB_WORKER_POOL``)
enforces no time limit, so a long task, or a countdown followed by a long task,
could outlive any visibility timeout and run twice. This consumer step refreshes,
every quarter of the visibility timeout, the timestamp kombu keeps for each
message the worker holds (``ZADD XX`` on its ``unacked_index``). A live worker's
messages therefore never look stale, whatever the pool, while a killed worker's
stop being refreshed and come back one visibility timeout after its last beat.
RabbitMQ needs none of this (a dead consumer's messages return at once).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps
from celery.worker.consumer.tasks import Tasks

log = logging.getLogger(__name__)


class UnackedHeartbeat(bootsteps.StartStopStep):
    """Consumer step: refresh the unacked timestamps of every message this worker holds."""

    requires = (Tasks,)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry: Any = None

    def start(self, consumer: Any) -> None:
        channel = consumer.task_consumer.channel
        if not hasattr(channel, "unacked_index_key"):  # not kombu's Redis transport
            return
        options = consumer.app.conf.broker_transport_options or {}
        interval = max(1.0, float(options.get("visibility_timeout", 3600)) / 4)
        self.timer_entry = consumer.timer.call_repeatedly(interval, refresh, (channel,),
                                                          priority=10)

    def stop(self, consumer: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


def refresh(channel: Any) -> int:
    """Mark every message ``channel`` holds unacknowledged as taken now; return how many."""
    try:
        tags = list(channel.qos._delivered)
    except RuntimeError:  # changed while copied (a task was acked): the next beat has it
        return 0
    if not tags:
        return 0
    now = time.time()
    try:
        with channel.conn_or_acquire() as client:
            # XX: only messages still in the index (an ack removed the others meanwhile).
            client.zadd(channel.unacked_index_key, dict.fromkeys(tags, now), xx=True)
    except channel.connection_errors as exc:
        log.warning("could not refresh %d unacknowledged messages: %s", len(tags), exc)
        return 0
    return len(tags)
