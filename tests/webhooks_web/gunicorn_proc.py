"""The web process as production runs it: the Procfile's gunicorn command, in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from hub.dev.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)  # polling a starting server, not synchronising on a result
    raise AssertionError("gunicorn did not answer /health in time")


@contextlib.contextmanager
def gunicorn(broker_url: str, metrics_dir: Path, **env: str) -> Iterator[str]:
    """Serve ``webhooks_web:create_app()`` with webhooks_web/gunicorn.conf.py and the
    test session's environment (plus ``env``); yields the base URL, stops it after."""
    port = free_port()
    environ = dict(os.environ, PORT=str(port), HUB_BROKER_URL=broker_url,
                   WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **env)
    # The defaults of gunicorn.conf.py unless a test sets them.
    for name in ("WEB_THREADS", "WEB_WORKER_CLASS", "WEB_CONNECTIONS"):
        if name not in env:
            environ.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "webhooks_web/gunicorn.conf.py",
         "webhooks_web:create_app()"], cwd=ROOT, env=environ,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base + "/health", proc, time.monotonic() + 30)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
