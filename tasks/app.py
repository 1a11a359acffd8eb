"""The Celery app: ``celery -A tasks worker``.

Settings come from ``celeryconfig`` (itself computed from HUB_* variables). A
bad setting stops the process with one line naming the variable.
"""

from __future__ import annotations

import os
import sys
import threading

from celery import Celery

from celerydispatch import CeleryDispatcher, HubCelery
from hub.platform.config import load_settings
from hub.platform.errors import ConfigError
from hub.platform.services import Services
from tasks.heartbeat import UnackedHeartbeat

TASK_MODULES = [
    "tasks.maintenance",
    "tasks.calls",
    "tasks.deadletter",
    "tasks.webhooks",
    "tasks.deliveries",
]


def _create_app() -> Celery:
    # Every task's base: a retry the broker refuses takes the message back instead of
    # dropping it, and a refused acknowledgement does not stop the worker (tasks/settle.py).
    celery_app = HubCelery("hub", include=TASK_MODULES, task_cls="tasks.settle:RequeueTask")
    try:
        celery_app.config_from_object("celeryconfig")
        celery_app.conf.broker_url  # noqa: B018 - force the lazy config to load now
    except ConfigError as exc:
        print(f"hub: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # A live worker's messages are never handed out again by a Redis broker, whatever
    # the pool (tasks/heartbeat.py).
    celery_app.steps["consumer"].add(UnackedHeartbeat)
    return celery_app


app = _create_app()

import tasks.logsetup  # noqa: F401 - connects the logging signals

_services: Services | None = None
_services_pid: int | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """This process's Services, built on first use and again after a fork (a pooled
    connection must never be shared between a prefork parent and its children).
    Every thread of a threads-pool worker gets the same one."""
    global _services, _services_pid
    svc = _services
    if svc is not None and _services_pid == os.getpid():
        return svc
    with _services_lock:
        if _services is None or _services_pid != os.getpid():
            _services = Services(load_settings(), CeleryDispatcher(app))
            _services_pid = os.getpid()
        return _services
