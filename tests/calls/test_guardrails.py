"""Celery guardrails of DESIGN §4 with real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import select

from hub.platform.models import DeadLetter
from tests.calls.processes import ROOT, worker_process

pytestmark = pytest.mark.slow


def test_start_up_refuses_a_countdown_reaching_the_visibility_timeout():
    env = {**os.environ, "HUB_MAX_COUNTDOWN": "250", "HUB_VISIBILITY_TIMEOUT": "300"}
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks", "inspect", "ping"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("hub: configuration error: HUB_MAX_COUNTDOWN + "
                                "HUB_TASK_TIME_LIMIT (250s + 180s) must stay below "
                                "HUB_VISIBILITY_TIMEOUT (300s)")
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


def test_soft_shutdown_returns_running_work_to_the_queue(client_app, settings, tenant, provider,
                                                         make_integration):
    from tests.calls.fake_provider import Reply

    make_integration("slowapi")
    provider.script("/v1/slow", Reply(200, {"late": True}, delay=15))
    queue = settings.queue(f"soft-{uuid.uuid4().hex[:6]}")
    # As under Kubernetes: SIGTERM starts the soft shutdown (REMAP_SIGTERM), which gives
    # running tasks HUB_WORKER_SOFT_SHUTDOWN_TIMEOUT seconds, then requeues them.
    env = {"REMAP_SIGTERM": "SIGQUIT", "HUB_WORKER_SOFT_SHUTDOWN_TIMEOUT": "1"}
    with worker_process(client_app, [queue], app="tasks", env=env) as first:
        result = client_app.send_task("hub.call", queue=queue, kwargs={
            "tenant": tenant, "integration": "slowapi", "operation": "post",
            "params": {"path": "/v1/slow"}})
        deadline = time.monotonic() + 30
        while provider.hits("/v1/slow") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert provider.hits("/v1/slow") == 1  # the task is running mid-call
        os.kill(first.pid, signal.SIGTERM)
        first.wait(timeout=30)
    assert result.state != "SUCCESS"
    with worker_process(client_app, [queue], app="tasks"):
        envelope = result.get(timeout=60)
    assert envelope["ok"] and envelope["data"]["path"] == "/v1/slow"
    assert provider.hits("/v1/slow") == 2
