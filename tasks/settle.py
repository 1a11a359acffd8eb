"""No task message is dropped because the broker refused a write (issue 9, "no dropped work").

Two places where Celery gives a message up when the broker refuses something:

* ``Task.retry`` publishes the retry message, and when that publish fails (a broker
  blip, a full Redis refusing writes under ``noeviction``, a RabbitMQ connection drop)
  it raises ``Reject(requeue=False)``: the original message is acknowledged, the call
  is gone, neither retried nor dead-lettered. :class:`RequeueTask` (every task's base,
  ``task_cls`` of the app) asks for the message back instead: ``Reject(requeue=True)``.
  The run is then received again (at once, or a visibility timeout later, below) with
  the same attempt number; for a hub task the receive stays counted, so the
  poison-message guardrail dead-letters a message whose retry can never be sent
  (tasks.base).
* Acknowledging or taking back a message is itself a write. A Redis broker that refuses
  writes answers it with an error Celery treats as fatal: the whole worker stopped
  ("Unrecoverable error: OutOfMemoryError"), with every task it was running.
  :class:`SettlingRequest` logs the refusal instead and forgets the message in this
  worker only: it stays unacknowledged in the broker, where nothing refreshes it any
  more (tasks/heartbeat.py refreshes the messages this worker holds), so the broker
  hands it out again after its visibility timeout. RabbitMQ takes a message back by
  itself when the channel that refused goes away.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.worker.request import Request

log = logging.getLogger(__name__)


class RequeueTask(Task):
    """A task whose retry, when the broker refuses it, takes the message back."""

    abstract = True
    Request = "tasks.settle:SettlingRequest"

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as exc:
            if exc.requeue:
                raise
            # Celery raises Reject(requeue=False) only when publishing the retry failed.
            log.warning("retry of %s[%s] not sent (%s): the message goes back to the broker",
                        self.name, self.request.id, exc.reason)
            raise Reject(exc.reason, requeue=True) from exc


class SettlingRequest(Request):
    """A request whose acknowledgement or requeue the broker refused does not stop the
    worker: the message stays unacknowledged in the broker and comes back from there."""

    acknowledged: bool

    def _refusals(self) -> tuple[type[BaseException], ...]:
        transport = getattr(self._message.channel, "connection", None)
        return (*self._connection_errors, *getattr(transport, "channel_errors", ()))

    def acknowledge(self) -> None:
        if not self.acknowledged:
            self._on_ack(_Refused(self._message, "acknowledge"), self._refusals())
            self.acknowledged = True

    def reject(self, requeue: bool = False) -> None:
        if not self.acknowledged:
            self._on_reject(_Refused(self._message, "requeue" if requeue else "reject"),
                            self._refusals(), requeue)
            self.acknowledged = True
            self.send_event("task-rejected", requeue=requeue)


class _Refused:
    """The logger kombu's ``ack_log_error``/``reject_log_error`` report a caught broker
    error to (from the except block, in the consumer's loop)."""

    def __init__(self, message: Any, what: str) -> None:
        self.message = message
        self.what = what

    def critical(self, *args: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        qos: Any = getattr(self.message.channel, "qos", None)
        connection_errors = getattr(getattr(self.message.channel, "connection", None),
                                    "connection_errors", ())
        if exc is not None and not isinstance(exc, connection_errors) and \
                hasattr(qos, "_delivered"):
            # The broker answered and refused (not a lost connection, after which the
            # consumer restarts and restores what it held): drop only this worker's
            # record, so the heartbeat stops keeping it and the visibility timeout
            # returns it.
            qos._delivered.pop(self.message.delivery_tag, None)
            qos._dirty.discard(self.message.delivery_tag)
        log.warning("broker refused to %s message %s (%r): it stays unacknowledged there "
                    "and is delivered again", self.what, self.message.delivery_tag, exc)
