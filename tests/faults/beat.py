"""Beat processes for the fault tests, each against a Redis the test owns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.calls.processes import ROOT


class BeatProcess:
    """``celery -A tasks beat`` in its own process group, logging to a file."""

    def __init__(self, redis_url: str, *, env: dict[str, str] | None = None,
                 netns: str | None = None) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="hub-beat-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "INFO",
               "--schedule", str(self.log_path) + ".schedule"]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        full_env = {**os.environ, "HUB_REDIS_URL": redis_url, "HUB_BROKER_URL": redis_url,
                    "HUB_LOG_FORMAT": "text", **(env or {})}
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def active(self) -> bool:
        """True once this beat logged that it holds the lock (and not lost it since)."""
        text = self.log
        return text.rfind("acquired the lock") > max(text.rfind("lost the lock"),
                                                    text.rfind("standing by"))

    def kill(self) -> None:
        """kill -9 the whole beat, as a crashed host would."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took. AssertionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")
