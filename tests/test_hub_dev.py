"""`hub dev` as a new user runs it: serves /health, runs hub.ping end to end, and
stops cleanly on Ctrl-C leaving no process behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests
from celery import Celery

from hub.dev.embedded import drop_database, free_port, with_database
from hub.ops import workers

pytestmark = pytest.mark.slow


def _poll(url: str, deadline: float, **kw) -> requests.Response:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=5, **kw)
        except (requests.ConnectionError, requests.Timeout) as exc:  # still booting
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered: {last}")


@pytest.fixture
def dev_env(settings, tmp_path):
    run = secrets.token_hex(4)
    database = f"hub_devtest_{run}"
    env = dict(os.environ)
    env.pop("HUB_ENCRYPTION_KEYS")  # hub dev generates one into the state dir
    env.update(HUB_DATABASE_URL=with_database(settings.database_url, database),
               HUB_QUEUE_PREFIX=f"devtest{run}.", HUB_REDIS_PREFIX=f"devtest{run}:",
               HUB_LOG_FORMAT="text")
    yield env, tmp_path
    drop_database(settings.database_url, database)


def _hub(*args: str, cwd, env=None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """``hub ARGS`` in a second terminal of the checkout ``cwd``: no HUB_* settings of
    its own unless ``env`` gives some."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run([sys.executable, "-c", "from celerydispatch import cli; cli()",
                           *args], cwd=cwd, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_hub_dev_serves_runs_ping_and_stops_on_ctrl_c(dev_env):
    env, checkout = dev_env
    state_dir = checkout / ".hub" / "dev"
    port, flower_port, metrics_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from celerydispatch import cli; cli()", "dev",
         "--port", str(port), "--flower-port", str(flower_port),
         "--worker-metrics-port", str(metrics_port), "--concurrency", "1"],
        cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        health = _poll(f"http://127.0.0.1:{port}/health", deadline)
        assert health.status_code == 200

        client = Celery(broker=env["HUB_REDIS_URL"],
                        backend="db+" + env["HUB_DATABASE_URL"])
        client.conf.task_default_queue = env["HUB_QUEUE_PREFIX"] + "celery"
        assert client.send_task("hub.ping").get(timeout=60)["pong"] == "ok"

        worker_metrics = _poll(f"http://127.0.0.1:{metrics_port}/metrics", deadline)
        assert worker_metrics.status_code == 200

        flower = _poll(f"http://127.0.0.1:{flower_port}/", deadline)
        assert flower.status_code == 401  # Flower is behind basic auth
        # Task events are off in celeryconfig; Flower turns them on in the worker (its
        # enable_events broadcast) and then sees the tasks it runs.
        user, password = (state_dir / "flower.auth").read_text().strip().split(":", 1)
        seen: dict[str, object] = {}
        while not any(t.get("name") == "hub.ping" for t in seen.values()):
            assert time.monotonic() < deadline, "Flower never saw a hub.ping task"
            client.send_task("hub.ping").get(timeout=60)
            seen = requests.get(f"http://127.0.0.1:{flower_port}/api/tasks",
                                auth=(user, password), timeout=5).json()
        client.close()
        assert (state_dir / "encryption.key").stat().st_mode & 0o777 == 0o600

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
        # The Procfile's worker: hub worker, one celery worker process per core.
        worker_processes = [c for c in children if c.cmdline()[1:3] == ["-m", "celery"]
                            and "worker" in c.cmdline()]
        assert len(worker_processes) == workers.default_processes()

        # Item 3: a second hub dev of the checkout refuses in one line, naming the first.
        (checkout / "sub").mkdir()  # a subdirectory of the checkout finds it too
        second = _hub("dev", "--port", str(free_port()), cwd=checkout / "sub",
                      env={"HUB_DATABASE_URL": env["HUB_DATABASE_URL"]})
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr.strip().splitlines() == [
            (f"hub: error: hub dev is already running in {state_dir} "
             f"(pid {proc.pid}, web http://127.0.0.1:{port}): stop it first")]

        # Items 1-2: another terminal finds it, and webhook URLs carry dev's port.
        exported = _hub("dev", "env", cwd=checkout / "sub")
        assert exported.returncode == 0
        assert f"export HUB_DATABASE_URL={env['HUB_DATABASE_URL']}" in exported.stdout
        assert "export HUB_ENCRYPTION_KEYS=" in exported.stdout
        added = _hub("--json", "webhooks", "add", "--tenant", "acme", "--source", "stripe",
                     "--scheme", "stripe", cwd=checkout / "sub")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["url"].startswith(
            f"http://127.0.0.1:{port}/api/v1/webhooks/stripe/")
        assert list((state_dir / "metrics" / "web").iterdir())  # not in the system temp
    except BaseException:
        for child in psutil.Process(proc.pid).children(recursive=True) + [proc]:
            child.kill()
        print(proc.communicate(timeout=30)[0][-5000:])
        raise

    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
    output, _ = proc.communicate(timeout=60)

    assert proc.returncode in (0, 130), output[-3000:]
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert [p.pid for p in alive] == [], output[-3000:]
    for line in ("webhooks", "health", "flower", "worker metrics", "broker", "backend"):
        assert f"hub dev: {line}" in output
    # Item 4: beat's 5-second maintenance runs are not INFO lines.
    assert "Sending due task" not in output
    assert not [line for line in output.splitlines()
                if "hub.maintenance." in line and ("received" in line or "succeeded" in line)]
    assert not (state_dir / "running.json").exists()
