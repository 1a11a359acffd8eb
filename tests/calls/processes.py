"""Celery worker *processes* (prefork) for the fault tests, with the test environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker_process(client_app, queues: list[str], *, concurrency: int = 1,  # type: ignore[no-untyped-def]
                   app: str = "tests.calls.worker_app", env: dict[str, str] | None = None,
                   ready_timeout: float = 60, pool: str = "prefork",
                   loglevel: str = "INFO") -> Iterator[subprocess.Popen]:
    """Start ``celery -A app worker --pool POOL`` on ``queues``; wait until it answers a
    ping; stop it (TERM, then KILL) on exit. Its log is at ``proc.log_path``.

    prefork by default: the fault tests kill pool children. ``loglevel`` DEBUG adds
    Celery's "Task ... received" lines (INFO shows one line per task, its outcome)."""
    name = f"w{uuid.uuid4().hex[:8]}@test"
    log = Path(tempfile.mkstemp(prefix="hub-worker-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool", pool,
           "-c", str(concurrency), "-Q", ",".join(queues), "-n", name, "-l", loglevel,
           "--without-gossip", "--without-mingle"]
    with open(log, "wb") as out:
        # HUB_WORKER_POOL too: Celery takes a configured worker_pool over the
        # command line's --pool prefork (its default value).
        proc = subprocess.Popen(cmd, cwd=ROOT,
                                env={**os.environ, "HUB_WORKER_POOL": pool, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log  # type: ignore[attr-defined]
    proc.hostname = name  # type: ignore[attr-defined]
    try:
        _wait_ready(client_app, proc, name, ready_timeout)
        yield proc
    finally:
        stop(proc)


def _wait_ready(client_app, proc, name: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {Path(proc.log_path).read_text()[-3000:]}")
        if client_app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError(f"worker {name} not ready: {Path(proc.log_path).read_text()[-3000:]}")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:  # type: ignore[type-arg]
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
