"""Send hub tasks by name from any process, with a Celery app that loads no task.

The worker (``tasks``), the web process (``webhooks_web``) and the ``hub``
command all enqueue through :class:`CeleryDispatcher`, the process's
implementation of :class:`hub.platform.dispatch.Dispatcher`. :func:`sender_app`
is the Celery app of a process that only sends: celeryconfig's broker, queues,
routes and serializer, and no task module, so the web process never imports
``tasks`` (DESIGN §2). :func:`cli` is the ``hub`` console script: the command
line with such a dispatcher, so a ``hub`` command loads no task module either
(and a bad setting is reported by the command, as JSON with ``--json``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.utils.quorum_queues import detect_quorum_queues


class HubCelery(Celery):
    """Celery whose sub-second countdowns also work with RabbitMQ's native delayed delivery.

    With quorum queues Celery routes a countdown through RabbitMQ's delay exchanges in
    whole seconds, and kombu refuses a delay under one second (``ValueError: countdown
    must be a positive number``): a call retried after a 0.3 s backoff was rejected and
    lost, neither retried nor dead-lettered. Such a countdown waits one second there.
    """

    def send_task(self, name: str, args: Any = None, kwargs: Any = None,
                  countdown: float | None = None, *rest: Any, **options: Any) -> Any:
        if countdown is not None and 0 < countdown < 1 and detect_quorum_queues(
                self, self.producer_pool.connections.connection.transport.driver_type)[0]:
            countdown = 1
        return super().send_task(name, args, kwargs, countdown, *rest, **options)


def sender_app(name: str, **conf: Any) -> Celery:
    """A Celery app configured from ``celeryconfig`` (plus ``conf``) that only sends."""
    app = HubCelery(name, config_source="celeryconfig")
    app.conf.update(conf)
    return app


class CeleryDispatcher:
    """Enqueue by task name through ``app.send_task``."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def send(self, name: str, kwargs: dict[str, Any], *, queue: str | None = None,
             countdown: float | None = None, task_id: str | None = None,
             headers: dict[str, str] | None = None) -> str:
        options: dict[str, Any] = {}
        if headers:
            options["headers"] = headers
        if queue:
            options["queue"] = queue
        if countdown:
            options["countdown"] = countdown
        if task_id:
            options["task_id"] = task_id
        return self._app.send_task(name, kwargs=kwargs, **options).id


def cli() -> None:
    """Entry point of the ``hub`` console script."""
    from hub.cli.main import main

    main(dispatcher_factory=lambda: CeleryDispatcher(sender_app("hub-cli")))
