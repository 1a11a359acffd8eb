"""The running ``hub dev`` of a checkout: one at a time, and findable by the CLI.

``hub dev`` holds an exclusive lock on ``<state>/dev.lock`` for as long as it
runs (the kernel drops it when the process dies, however it dies) and writes
``<state>/running.json`` (mode 0600: it holds the development encryption key)
with its pid, URLs and the ``HUB_*`` settings its processes run with. A second
``hub dev`` of the same state directory refuses to start, naming the first; the
``hub`` command in another terminal of the same checkout reads the record and
talks to the same servers (:func:`client_environment`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from hub.platform.errors import Conflict

#: Where ``hub dev`` keeps its state, under the checkout's root.
STATE_DIR = Path(".hub/dev")
RECORD = "running.json"
LOCK = "dev.lock"

#: Settings of hub dev's processes that a client does not take over: they are
#: per process (ports) or describe hub dev itself.
_NOT_FOR_CLIENTS = ("HUB_WORKER_METRICS_PORT",)


def find_state_dir(start: Path | None = None) -> Path:
    """``.hub/dev`` of the checkout ``start`` (default: the working directory) is in:
    the nearest directory upwards that has one, else ``start/.hub/dev``."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / STATE_DIR).is_dir():
            return directory / STATE_DIR
    return here / STATE_DIR


@contextmanager
def hold(state_dir: Path) -> Iterator[None]:
    """Be the one ``hub dev`` of ``state_dir`` until the block ends.

    Raises Conflict naming the running one (pid and web URL) when another holds it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(_already_running(state_dir)) from None
        try:
            yield
        finally:
            (state_dir / RECORD).unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _already_running(state_dir: Path) -> str:
    found = read(state_dir)
    who = (f"pid {found['pid']}, web {found['urls'].get('web', '?')}" if found
           else "starting up")
    return f"hub dev is already running in {state_dir} ({who}): stop it first"


def write(state_dir: Path, *, env: Mapping[str, str], urls: Mapping[str, str]) -> None:
    """Record this process as the running ``hub dev`` of ``state_dir`` (mode 0600)."""
    document = {"pid": os.getpid(), "state_dir": str(state_dir), "urls": dict(urls),
                "env": {k: v for k, v in env.items()
                        if k.startswith("HUB_") and k not in _NOT_FOR_CLIENTS}}
    path = state_dir / RECORD
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        _dump(document, out)


def _dump(document: Mapping[str, Any], out: TextIO) -> None:
    json.dump(document, out, indent=2, sort_keys=True)
    out.write("\n")


def read(state_dir: Path) -> dict[str, Any] | None:
    """The record of the ``hub dev`` running in ``state_dir``, or None (none recorded,
    or its process is gone: a killed ``hub dev`` leaves its record behind)."""
    try:
        document: dict[str, Any] = json.loads((state_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return document if _alive(int(document.get("pid", 0))) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def client_environment(environ: Mapping[str, str],
                       start: Path | None = None) -> dict[str, str]:
    """The settings a ``hub`` command in this checkout should add to ``environ`` to
    reach the running ``hub dev``: its ``HUB_*`` settings, those ``environ`` does not
    set itself. Empty when no ``hub dev`` runs, or when ``environ`` names a database
    or Redis of its own (then it means that one)."""
    if environ.get("HUB_DATABASE_URL") or environ.get("HUB_REDIS_URL"):
        return {}
    found = read(find_state_dir(start))
    if found is None:
        return {}
    return {k: v for k, v in found["env"].items() if k not in environ}
