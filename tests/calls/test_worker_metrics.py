"""A real prefork worker serves the hub's metrics of all its pool processes."""

from __future__ import annotations

import ipaddress
import os
import re
import time
import uuid

import pytest
import requests

from hub.dev.embedded import free_port
from tasks import workermetrics
from tests.calls.processes import worker_process
from webhooks_web.app import METRICS as WEB

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

        # Issue 9 item 14: bound to 0.0.0.0 before; loopback unless configured.
        assert _listening(port) == {"127.0.0.1"}

    counted = [line for line in text.splitlines()
               if line.startswith("hub_calls_total{") and f'integration="{name}"' in line]
    assert counted, (text[-2000:], proc.log_path.read_text()[-2000:])
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 3
    # State read at scrape time: the integration's circuit (never opened) is closed.
    assert f'hub_breaker_state{{integration="{name}",tenant="{tenant}"}} 0.0' in text

    # Issue 13 item 19: its own families (zero without labels, help and type with
    # them), none of the web app's ingest families.
    exported = set(re.findall(r"^# TYPE (hub_\S+) ", text, re.MULTILINE))
    assert {f.name for f in workermetrics.METRICS} <= exported
    assert not exported & ({f.name for f in WEB} - {f.name for f in workermetrics.METRICS})
    assert "hub_delivery_duration_seconds_count 0.0" in text.splitlines()


def test_a_worker_stamps_each_maintenance_success(client_app, settings, services):
    """Beat's pulse (hub_maintenance_last_success_timestamp_seconds) is written by the
    worker that ran the task, whoever sent it."""
    from hub.ops import maintenance

    queue = settings.queue(f"maint-{uuid.uuid4().hex[:6]}")
    started = time.time()
    with worker_process(client_app, [queue], app="tasks", pool="threads"):
        client_app.send_task("hub.maintenance.enqueue_due", queue=queue)
        deadline = time.monotonic() + 30
        stamp = 0.0
        while time.monotonic() < deadline:
            stamp = maintenance.last_successes(services).get("hub.maintenance.enqueue_due", 0)
            if stamp >= started:
                break
            time.sleep(0.1)  # polling Redis until the worker ran the task
    assert started <= stamp <= time.time()


def _listening(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on ``port`` (Linux /proc/net)."""
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    raw = bytes.fromhex(address)
                    # /proc prints each 32-bit word in host (little-endian) order.
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                    found.add(str(ipaddress.ip_address(raw)))
    return found


def test_metrics_address_is_a_setting_refusing_a_non_address():
    from hub.platform.config import load_settings
    from hub.platform.errors import ConfigError

    assert load_settings({}).worker_metrics_address == "127.0.0.1"
    assert load_settings({"HUB_WORKER_METRICS_ADDRESS": "::"}).worker_metrics_address == "::"
    with pytest.raises(ConfigError, match="HUB_WORKER_METRICS_ADDRESS is malformed"):
        load_settings({"HUB_WORKER_METRICS_ADDRESS": "all-interfaces"})


def test_only_a_worker_process_gets_a_sample_directory():
    environ = {workermetrics.PORT_VARIABLE: "9808"}

    workermetrics.prepare(["-A", "tasks", "beat"], environ)
    assert workermetrics.DIRECTORY_VARIABLE not in environ

    workermetrics.prepare(["-A", "tasks", "worker", "-c", "2"], environ)
    directory = environ[workermetrics.DIRECTORY_VARIABLE]
    assert os.path.isdir(directory)
    os.rmdir(directory)  # the worker's exit removes it; this process is no worker
