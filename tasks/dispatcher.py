"""A hub Dispatcher backed by a Celery app's ``send_task`` (by name, no task imports)."""

from __future__ import annotations

from typing import Any

from celery import Celery


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def send(self, name: str, kwargs: dict[str, Any], *, queue: str | None = None,
             countdown: float | None = None, task_id: str | None = None) -> str:
        options: dict[str, Any] = {}
        if queue:
            options["queue"] = queue
        if countdown:
            options["countdown"] = countdown
        if task_id:
            options["task_id"] = task_id
        return self._app.send_task(name, kwargs=kwargs, **options).id
