"""A real prefork worker serves the hub's metrics of all its pool processes."""

from __future__ import annotations

import ipaddress
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

        # Issue 9 item 14: bound to 0.0.0.0 before; loopback unless configured.
        assert _listening(port) == {"127.0.0.1"}

    counted = [line for line in text.splitlines()
               if line.startswith("hub_calls_total{") and f'integration="{name}"' in line]
    assert counted, (text[-2000:], proc.log_path.read_text()[-2000:])
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 3
    # State read at scrape time: the integration's circuit (never opened) is closed.
    assert f'hub_breaker_state{{integration="{name}",tenant="{tenant}"}} 0.0' in text


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
