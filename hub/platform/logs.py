"""Structured logs: one JSON object per line with task id, tenant and correlation id.

The ids live in context variables that the edges set (a task before it runs, the
web app per request); a logging filter copies them onto every record, so
``log.info("...")`` anywhere in ``hub/`` carries them without passing them around.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None)

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds ``task_id``, ``tenant`` and ``correlation_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.task_id = task_id_var.get()
        record.tenant = tenant_var.get()
        record.correlation_id = correlation_id_var.get()
        return True


@contextmanager
def log_context(*, task_id: str | None = None, tenant: str | None = None,
                correlation_id: str | None = None) -> Iterator[None]:
    """Bind ids for the logs written inside the block."""
    tokens = [task_id_var.set(task_id), tenant_var.set(tenant),
              correlation_id_var.set(correlation_id or task_id)]
    try:
        yield
    finally:
        for var, token in zip((task_id_var, tenant_var, correlation_id_var), tokens):
            var.reset(token)


#: Tasks beat sends every few seconds (celeryconfig.beat_schedule): their routine
#: "sending", "received" and "succeeded" lines are DEBUG detail, not INFO news
#: (they were 490 of 670 lines of a `hub dev` session). Failures still show.
ROUTINE_TASK_PREFIX = "hub.maintenance."
_ROUTINE_WORDS = ("Sending due task", "received", "succeeded")


class RoutineTaskFilter(logging.Filter):
    """Drops the INFO lines of routine maintenance runs unless the root logger is at
    DEBUG (HUB_LOG_LEVEL=DEBUG shows them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        return not is_routine(record)


def is_routine(record: logging.LogRecord) -> bool:
    """True for Celery's per-run lines about a ``hub.maintenance.*`` task."""
    if not record.name.startswith("celery."):
        return False
    data = getattr(record, "data", None)
    name = data.get("name", "") if isinstance(data, dict) else ""
    message = record.getMessage()
    about_routine = (str(name).startswith(ROUTINE_TASK_PREFIX)
                     or f"({ROUTINE_TASK_PREFIX}" in message)
    return about_routine and any(word in message for word in _ROUTINE_WORDS)


class OncePerException(logging.Filter):
    """Marks an exception as logged, so :func:`excepthook` does not log it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            try:
                record.exc_info[1].__hub_logged__ = True  # type: ignore[attr-defined]
            except AttributeError:  # an exception type without a __dict__
                pass
        return True


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook``: an uncaught exception is one log record (with its traceback
    in it), not the traceback printed line by line into a stderr that Celery turned
    into a logger (1,548 JSON records for one dying beat); nothing if a handler already
    logged this very exception (Celery beat logs it before re-raising)."""
    if getattr(exc, "__hub_logged__", False):
        return
    logging.getLogger("hub").critical("uncaught %s: %s", exc_type.__name__, first_line(exc),
                                      exc_info=(exc_type, exc, tb))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (drivers write several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def json_formatter() -> logging.Formatter:
    return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=False)


def install(handler: logging.Handler | None = None, *, level: str = "INFO",
            fmt: str = "json") -> logging.Handler:
    """Attach the context filter (and the JSON formatter when ``fmt == "json"``)."""
    handler = handler or logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(OncePerException())
    root = logging.getLogger()
    if handler not in root.handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
