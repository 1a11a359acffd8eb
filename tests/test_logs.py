"""Worker log lines are JSON objects carrying the task id and tenant."""

from __future__ import annotations

import io
import json
import logging

from hub.platform import logs


def test_log_lines_carry_task_tenant_and_correlation_ids():
    stream = io.StringIO()
    handler = logs.install(logging.StreamHandler(stream), fmt="json")
    try:
        with logs.log_context(task_id="task-1", tenant="acme"):
            logging.getLogger("hub.test").warning("calling %s", "crm")
        logging.getLogger("hub.test").warning("outside")
    finally:
        logging.getLogger().removeHandler(handler)

    inside, outside = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert inside["message"] == "calling crm" and inside["level"] == "WARNING"
    assert (inside["task_id"], inside["tenant"], inside["correlation_id"]) == (
        "task-1", "acme", "task-1")
    assert outside["task_id"] is None and outside["tenant"] is None


def _through_filters(*records_args):  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RoutineTaskFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        for logger, level, message, args, data in records_args:
            positional = args if isinstance(args, tuple) else (args,)
            logging.getLogger(logger).log(level, message, *positional, extra={"data": data})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return stream.getvalue().splitlines()


def test_routine_maintenance_runs_are_not_info_lines():
    routine = {"name": "hub.maintenance.enqueue_due", "id": "1", "runtime": 0.01,
               "return_value": 0}
    call = {**routine, "name": "hub.call"}
    lines = _through_filters(
        ("celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)",
         ("enqueue-due", "hub.maintenance.enqueue_due"), None),
        ("celery.worker.strategy", logging.INFO, "Task %(name)s[%(id)s] received", routine,
         routine),
        ("celery.app.trace", logging.INFO,
         "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", routine, routine),
        ("celery.app.trace", logging.INFO,
         "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", call, call),
        ("celery.app.trace", logging.ERROR, "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
         {**routine, "exc": "boom"}, routine),
    )
    assert lines == ["Task hub.call[1] succeeded in 0.01s: 0",
                     "Task hub.maintenance.enqueue_due[1] raised unexpected: boom"]


_DYING = """
import logging, sys
from celery.utils.log import LoggingProxy
from hub.platform import logs
logs.install(logging.StreamHandler(sys.__stderr__), fmt="json")
# What Celery does to a worker's and beat's stderr: every write becomes a record.
sys.stderr = LoggingProxy(logging.getLogger("celery.redirected"), logging.WARNING)
sys.excepthook = logs.excepthook
def deep(n):
    return deep(n - 1) if n else 1 / 0
try:
    deep(40)
except ZeroDivisionError:
    if sys.argv[1] == "logged":  # as beat does before re-raising
        logging.getLogger("celery.beat").critical("beat raised", exc_info=True)
    raise
"""


def test_an_uncaught_exception_is_one_record_not_one_per_traceback_line():
    import subprocess
    import sys

    for mode, expected in (("plain", 1), ("logged", 1)):
        done = subprocess.run([sys.executable, "-c", _DYING, mode], check=False,
                              capture_output=True,
                              text=True, timeout=60)
        records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
        assert len(records) == expected, done.stderr[-2000:]
        assert "ZeroDivisionError" in records[0]["exc_info"]
        assert done.returncode == 1


def test_a_worker_logs_one_info_line_per_task_not_two():
    """Celery's "Task ... received" is at DEBUG: at INFO a task run is one line, its
    outcome (issue 10: a record per call costs the worker CPU)."""
    from tasks import logsetup

    root, strategy = logging.getLogger(), logging.getLogger("celery.worker.strategy")
    old_root, old_strategy = root.level, strategy.level
    try:
        for level, received_shown in ((logging.INFO, False), (logging.DEBUG, True)):
            root.setLevel(level)
            logsetup._structured(logging.getLogger("celery"))
            assert strategy.isEnabledFor(logging.INFO) is received_shown
            assert logging.getLogger("celery.app.trace").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(old_root)
        strategy.setLevel(old_strategy)
