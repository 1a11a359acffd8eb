"""Celery guardrails of DESIGN §4 with real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import select

from hub.models import DeadLetter
from tests.calls.processes import ROOT, worker_process

pytestmark = pytest.mark.slow


def test_start_up_refuses_a_countdown_reaching_the_visibility_timeout():
    env = {**os.environ, "HUB_MAX_COUNTDOWN": "3600", "HUB_VISIBILITY_TIMEOUT": "3600"}
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "inspect", "ping"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("hub: configuration error: HUB_MAX_COUNTDOWN (3600s) must stay "
                                "below HUB_VISIBILITY_TIMEOUT (3600s)")
    assert "Traceback" not in out.stderr


def test_poison_message_is_dead_lettered_after_max_receives(client_app, settings, sessions):
    queue = settings.queue(f"poison-{uuid.uuid4().hex[:6]}")
    with worker_process(client_app, [queue]) as proc:
        result = client_app.send_task("hub.test.suicide", kwargs={"marker": "x"}, queue=queue)
        deadline = time.monotonic() + 90
        row = None
        while row is None and time.monotonic() < deadline:
            with sessions() as s:
                row = s.scalars(select(DeadLetter).where(DeadLetter.task_id == result.id)) \
                    .one_or_none()
            time.sleep(0.1)
        assert row is not None, proc.log_path.read_text()[-4000:]
        assert (row.origin, row.task_name, row.error_code) == \
            ("poison", "hub.test.suicide", "DEAD_LETTERED")
        assert row.attempts == settings.max_receives
        with pytest.raises(Exception) as caught:
            result.get(timeout=30)
        assert caught.value.args[0]["error"]["code"] == "DEAD_LETTERED"
        log = proc.log_path.read_text()
        assert log.count("hub.test.suicide") >= settings.max_receives  # it did loop, then stopped
