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
    root = logging.getLogger()
    if handler not in root.handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
