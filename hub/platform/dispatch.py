"""How the core asks for a task to run, without knowing Celery.

The process supplies a :class:`Dispatcher`: the worker and the web app wrap a
Celery app's ``send_task`` (by name, so the web process never loads task
modules); tests of pure core functions use :class:`RecordingDispatcher`.
:func:`send_after_commit` defers sending until the session commits, so a worker
never looks for a row that is not there yet (warehouse's ``tasks.py`` pattern).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from hub.platform.db import on_commit

log = logging.getLogger(__name__)


#: Message header naming the dead letter a task was sent by ``hub dlq replay`` to replay
#: (its value is the letter's id). A header, not a kwarg: the task's arguments stay
#: exactly the original ones, and the worker knows it is a replay from its first run.
REPLAY_HEADER = "hub_replay_of"


class Dispatcher(Protocol):
    def send(self, name: str, kwargs: dict[str, Any], *, queue: str | None = None,
             countdown: float | None = None, task_id: str | None = None,
             headers: dict[str, str] | None = None) -> str:
        """Enqueue task ``name`` with JSON ``kwargs`` (and message ``headers``, which the
        task reads from its request); return the task id."""


def send_many(dispatcher: Dispatcher, name: str,
              kwargs_list: Sequence[dict[str, Any]]) -> list[str]:
    """Enqueue ``name`` once per kwargs, now: in one broker round trip when the
    dispatcher has ``send_many(name, kwargs_list) -> task ids`` (the web app's
    publisher does), else one ``send`` each."""
    # getattr, not isinstance: a runtime-checkable Protocol check costs more than the rest.
    batch = getattr(dispatcher, "send_many", None)
    if batch is not None:
        return batch(name, kwargs_list)
    return [dispatcher.send(name, kwargs) for kwargs in kwargs_list]


@dataclass
class RecordingDispatcher:
    """A Dispatcher that only records what it was asked to send."""

    sent: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    headers: list[dict[str, str] | None] = field(default_factory=list)

    def send(self, name: str, kwargs: dict[str, Any], *, queue: str | None = None,
             countdown: float | None = None, task_id: str | None = None,
             headers: dict[str, str] | None = None) -> str:
        self.sent.append((name, kwargs, queue))
        self.headers.append(headers)
        return task_id or f"recorded-{len(self.sent)}"


def send_after_commit(session: Session, dispatcher: Dispatcher, name: str,
                      kwargs: dict[str, Any], **options: Any) -> None:
    """Send the task once ``session`` commits; drop it if the session rolls back.

    A failed send is logged and swallowed: the row the task would process is
    already committed, and the beat sweepers re-enqueue what PostgreSQL still
    says is pending.
    """

    def _send() -> None:
        try:
            dispatcher.send(name, kwargs, **options)
        except Exception:
            log.warning("enqueue of %s failed after commit; the sweeper will retry it", name,
                        exc_info=True)

    on_commit(session, _send)
