"""A real prefork worker serves the hub's metrics of all its pool processes."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from hub.dev.embedded import free_port
from tasks import workermetrics
from tests.calls.processes import worker_process

pytestmark = pytest.mark.slow


def test_the_worker_serves_call_metrics_recorded_in_its_pool_processes(
        client_app, settings, tenant, provider, make_integration):
    from tests.calls.fake_provider import Reply

    name = f"metered{uuid.uuid4().hex[:6]}"
    make_integration(name)
    provider.script("/v1/things", Reply(200, {"ok": True}))
    queue = settings.queue(f"metrics-{uuid.uuid4().hex[:6]}")
    port = free_port()
    env = {"HUB_WORKER_METRICS_PORT": str(port)}
    with worker_process(client_app, [queue], app="tasks", concurrency=2, env=env) as proc:
        for _ in range(3):
            envelope = client_app.send_task("hub.call", queue=queue, kwargs={
                "tenant": tenant, "integration": name, "operation": "get",
                "params": {"path": "/v1/things"}}).get(timeout=60)
            assert envelope["ok"], envelope
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            if f'integration="{name}"' in text:
                break
            time.sleep(0.1)  # the sample files are written as the tasks end

    counted = [line for line in text.splitlines()
               if line.startswith("hub_calls_total{") and f'integration="{name}"' in line]
    assert counted, (text[-2000:], proc.log_path.read_text()[-2000:])
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 3


def test_only_a_worker_process_switches_to_multiprocess_metrics(monkeypatch):
    from prometheus_client import values

    monkeypatch.setenv(workermetrics.PORT_VARIABLE, "9808")
    # Empty, and put back as it was (unset) after the test: this process stays in-memory.
    monkeypatch.setenv(workermetrics.DIRECTORY_VARIABLE, "")
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)

    workermetrics.prepare(["-A", "tasks", "beat"])
    assert os.environ[workermetrics.DIRECTORY_VARIABLE] == ""

    workermetrics.prepare(["-A", "tasks", "worker", "-c", "2"])
    assert os.path.isdir(os.environ[workermetrics.DIRECTORY_VARIABLE])
    assert values.ValueClass.__qualname__.startswith("MultiProcessValue")
