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
