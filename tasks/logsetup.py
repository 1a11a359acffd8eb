"""Worker and beat logging: JSON lines carrying the running task's id, tenant and
correlation id; one INFO line per task run (its outcome), beat's routine maintenance
runs at DEBUG; one record per uncaught exception (hub.platform.logs)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
)

from hub.platform import logs
from hub.platform.config import load_settings


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured(logger: logging.Logger, **_: Any) -> None:
    fmt = load_settings().log_format
    for handler in logger.handlers:
        if fmt == "json":
            handler.setFormatter(logs.json_formatter())
        handler.addFilter(logs.ContextFilter())
        handler.addFilter(logs.RoutineTaskFilter())
        handler.addFilter(logs.OncePerException())
    sys.excepthook = logs.excepthook
    # One INFO line per task, not two: its outcome (succeeded, failed, retry) says
    # the task ran; "Task ... received" shows at DEBUG (HUB_LOG_LEVEL / --loglevel).
    # Celery decides once, when the consumer starts, whether it makes that record.
    strategy = logging.getLogger("celery.worker.strategy")
    strategy.setLevel(logging.NOTSET if logging.getLogger().isEnabledFor(logging.DEBUG)
                      else logging.WARNING)


@task_prerun.connect
def _bind(task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    headers = getattr(task.request, "headers", None) or {}
    logs.task_id_var.set(task_id)
    logs.tenant_var.set((kwargs or {}).get("tenant") or (kwargs or {}).get("tenant_id"))
    logs.correlation_id_var.set(headers.get("correlation_id") or task.request.root_id or task_id)


@task_postrun.connect
def _unbind(**_: Any) -> None:
    for var in (logs.task_id_var, logs.tenant_var, logs.correlation_id_var):
        var.set(None)
