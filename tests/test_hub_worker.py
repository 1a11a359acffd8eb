"""`hub worker` (the Procfile's and every recipe's worker): one Celery worker process
per core and one more, with distinct hostnames, signals passed on, one metrics port for all, and a
worker that dies taking the set down for the process manager to restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from hub.dev.embedded import free_port
from hub.ops import workers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_is_one_process_per_usable_cpu_and_one_more():
    # A process keeps less than a core busy (docs/benchmarks.md, issue 10 round 6).
    assert workers.default_processes() == len(os.sched_getaffinity(0)) + 1


def test_hostnames_differ_per_process_and_keep_a_given_name():
    assert workers.with_hostname(["-Q", "a"], 2) == ["-Q", "a", "--hostname", "worker2@%h"]
    assert workers.with_hostname(["-n", "w@box", "-l", "INFO"], 1) == [
        "-l", "INFO", "--hostname", "w1@box"]
    assert workers.with_hostname(["--hostname=w@box"], 3)[-1] == "w3@box"
    assert workers.with_hostname(["-nw"], 3)[-1] == "w3@%h"


def _start(queue: str, name: str, metrics_port: int, processes: int = 2):  # type: ignore[no-untyped-def]
    log = Path(tempfile.mkstemp(prefix="hub-worker-", suffix=".log")[1])
    env = {**os.environ, "HUB_WORKER_PROCESSES": str(processes),
           "HUB_WORKER_METRICS_PORT": str(metrics_port), "HUB_WORKER_CONCURRENCY": "4"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from celerydispatch import cli; cli()", "worker",
             "-Q", queue, "-n", f"{name}@test", "--loglevel", "INFO", "--without-gossip",
             "--without-mingle"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def _workers(proc) -> list[psutil.Process]:  # type: ignore[no-untyped-def]
    return [p for p in psutil.Process(proc.pid).children()
            if "celery" in " ".join(p.cmdline())]


def _wait_ready(client_app, proc, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 90
    answered: set[str] = set()
    while answered != set(names):
        assert proc.poll() is None, Path(proc.log_path).read_text()[-3000:]
        assert time.monotonic() < deadline, (answered, Path(proc.log_path).read_text()[-3000:])
        for reply in client_app.control.ping(destination=names, timeout=0.5):
            answered.update(reply)


def _stop(proc) -> None:  # type: ignore[no-untyped-def]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_hub_worker_runs_one_worker_per_process_and_stops_them_on_sigterm(client_app,
                                                                          settings):
    queue = settings.queue(f"hw-{uuid.uuid4().hex[:6]}")
    name = f"hw{uuid.uuid4().hex[:6]}"
    port = free_port()
    proc = _start(queue, name, port)
    try:
        names = [f"{name}1@test", f"{name}2@test"]
        _wait_ready(client_app, proc, names)
        children = _workers(proc)
        assert len(children) == 2
        # Each in a process group of its own: a terminal's Ctrl-C reaches them once,
        # through hub worker.
        assert {os.getpgid(c.pid) for c in children} == {c.pid for c in children}
        results = [client_app.send_task("hub.ping", queue=queue) for _ in range(20)]
        assert all(r.get(timeout=60)["pong"] == "ok" for r in results)
        # One metrics port for the set: the first worker serves them all.
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "hub_calls_total" in scraped.text
        directory = children[0].environ()["PROMETHEUS_MULTIPROC_DIR"]
        assert children[1].environ()["PROMETHEUS_MULTIPROC_DIR"] == directory
        assert "HUB_WORKER_METRICS_PORT" not in children[1].environ()

        os.kill(proc.pid, signal.SIGTERM)  # to hub worker alone, as systemd's KillMode=mixed
        assert proc.wait(90) == 0, Path(proc.log_path).read_text()[-3000:]
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
        assert not Path(directory).exists()
        log = Path(proc.log_path).read_text()
        assert log.count("Warm shutdown") + log.count("soft shutdown") >= 2, log[-3000:]
    finally:
        _stop(proc)


def test_a_worker_that_dies_stops_the_others_and_hub_worker_exits(client_app, settings):
    queue = settings.queue(f"hw-{uuid.uuid4().hex[:6]}")
    name = f"hw{uuid.uuid4().hex[:6]}"
    proc = _start(queue, name, 0)
    try:
        _wait_ready(client_app, proc, [f"{name}1@test", f"{name}2@test"])
        first, second = _workers(proc)
        first.kill()
        assert proc.wait(90) == 128 + signal.SIGKILL
        _gone, alive = psutil.wait_procs([second], timeout=10)
        assert alive == []
    finally:
        _stop(proc)


def test_no_worker_outlives_a_killed_hub_worker(client_app, settings):
    queue = settings.queue(f"hw-{uuid.uuid4().hex[:6]}")
    name = f"hw{uuid.uuid4().hex[:6]}"
    proc = _start(queue, name, 0)
    try:
        _wait_ready(client_app, proc, [f"{name}1@test", f"{name}2@test"])
        children = _workers(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=60)
        assert alive == []
    finally:
        _stop(proc)
