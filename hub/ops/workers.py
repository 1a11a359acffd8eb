"""``hub worker``: one Celery worker process per core and one more, supervised as one process.

A worker process runs its tasks in threads (README "Workers") and so uses at most one
core (the GIL), in practice less: its consumer thread waits for the GIL its task
threads hold, so two processes kept 1.65 of two cores busy. ``hub worker`` starts
``HUB_WORKER_PROCESSES`` of them (default: one per CPU this process may run on, and one
more, which fills the rest: 10-15 % more calls and webhook deliveries per second on two
cores, docs/benchmarks.md issue 10 round 6), each ``celery -A tasks worker`` with the arguments
given and a hostname of its own (``worker1@host``, ``worker2@host``...), and stands for
them towards whatever runs it (honcho, systemd, Kubernetes, compose):

- a signal it receives (TERM, INT, QUIT, HUP, USR1, USR2) is passed to every worker
  once: SIGTERM is Celery's soft shutdown in each (running tasks finish or are
  requeued), SIGINT too, SIGQUIT its cold shutdown. The workers run in a process
  group of their own, so a terminal's Ctrl-C reaches them only through it (twice
  would be Celery's cold shutdown);
- a worker that exits on its own (a crash, a kill -9) stops the others (soft
  shutdown), and ``hub worker`` exits with its status, for the process manager to
  restart the set (Restart=always, a pod's or compose's restart policy);
- it exits when every worker has, with 0 when all exited 0;
- metrics: with ``HUB_WORKER_METRICS_PORT`` set, the workers share one Prometheus
  sample directory and the first serves their sum on that port (one scrape target
  per host or pod, as before); the directory is removed at exit;
- a worker is told to die with ``hub worker`` (Linux's parent-death signal), so
  none outlives a ``hub worker`` killed -9.

With one process it simply becomes that worker (exec): nothing stands between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
             signal.SIGUSR1, signal.SIGUSR2)
PORT_VARIABLE = "HUB_WORKER_METRICS_PORT"
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
HOSTNAME_OPTIONS = ("-n", "--hostname")


def default_processes() -> int:
    """One per CPU this process may run on (its affinity: a cpuset, taskset), and one
    more."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(cpus, 1) + 1


def with_hostname(args: Sequence[str], number: int) -> list[str]:
    """``args`` with the hostname of worker ``number``: ``worker<N>@%h`` by default, or
    the given ``--hostname name@host`` as ``name<N>@host`` (names must differ: Celery
    tells workers apart by them)."""
    out: list[str] = []
    given = None
    items = list(args)
    index = 0
    while index < len(items):
        item = items[index]
        if item in HOSTNAME_OPTIONS and index + 1 < len(items):
            given = items[index + 1]
            index += 2
            continue
        if item.startswith("--hostname="):
            given = item.split("=", 1)[1]
        elif item.startswith("-n") and len(item) > 2:
            given = item[2:]
        else:
            out.append(item)
        index += 1
    name, _, host = (given or "worker@%h").partition("@")
    return [*out, "--hostname", f"{name}{number}@{host or '%h'}"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl: go
        os._exit(1)


@dataclass
class Supervisor:
    """Runs ``count`` copies of ``command`` (argv, without a hostname) and forwards
    signals to them; :meth:`run` returns the exit status."""

    command: list[str]
    count: int
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: str | None = None
    stop_timeout: float = 120.0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopping: bool = False
    _metrics_dir: str | None = None

    def _environments(self) -> list[dict[str, str]]:
        base = dict(self.env)
        serving = base.get(PORT_VARIABLE, "").strip() not in ("", "0")
        if serving and not base.get(DIRECTORY_VARIABLE):
            self._metrics_dir = tempfile.mkdtemp(prefix="hub-worker-metrics-")
            base[DIRECTORY_VARIABLE] = self._metrics_dir
        envs = []
        for number in range(1, self.count + 1):
            env = dict(base)
            if serving and number > 1:
                env.pop(PORT_VARIABLE)  # the first serves the sum of the shared directory
            envs.append(env)
        return envs

    def start(self) -> None:
        for number, env in enumerate(self._environments(), start=1):
            argv = with_hostname(self.command, number)
            # preexec_fn is safe here: the supervisor runs no thread of its own.
            self.procs.append(subprocess.Popen(argv, env=env, cwd=self.cwd,
                                               preexec_fn=_die_with_parent))  # noqa: PLW1509

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def run(self, install: Callable[[int, Any], Any] = signal.signal) -> int:
        for signum in FORWARDED:
            install(signum, self.forward)
        try:
            self.start()
            status = self._wait()
        finally:
            self._cleanup()
        return status

    def _wait(self) -> int:
        first_exit: int | None = None
        deadline: float | None = None
        while any(p.poll() is None for p in self.procs):
            for proc in self.procs:
                code = proc.poll()
                if code is not None and first_exit is None and not self.stopping:
                    # One died on its own: stop the others, exit with its status.
                    log.error("hub worker: worker pid %d exited with %d; stopping the others",
                              proc.pid, code)
                    first_exit = _status(code) or 1
                    self.forward(signal.SIGTERM)
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.stop_timeout
            if deadline is not None and time.monotonic() > deadline:
                for proc in self.procs:
                    if proc.poll() is None:
                        proc.kill()
            time.sleep(0.2)
        codes = [p.wait() for p in self.procs]
        if first_exit is not None:
            return first_exit
        return next((_status(c) for c in codes if c != 0), 0)

    def _cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


def _status(code: int) -> int:
    """A child's exit status as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - code if code < 0 else code


def celery_worker_argv(args: Sequence[str]) -> list[str]:
    """``celery -A tasks worker ARGS`` with this interpreter (``-A APP`` among ``args``
    names another app, e.g. one adding tasks of its own to the hub's: benchmarks)."""
    app, rest, items = "tasks", [], list(args)
    while items:
        item = items.pop(0)
        if item in ("-A", "--app") and items:
            app = items.pop(0)
        elif item.startswith("--app="):
            app = item.split("=", 1)[1]
        else:
            rest.append(item)
    return [sys.executable, "-m", "celery", "-A", app, "worker", *rest]


def run(args: Sequence[str], processes: int, *, cwd: str | None = None,
        stop_timeout: float = 120.0) -> int:
    """Run ``processes`` workers with ``args`` until they stop; the exit status. One
    process: exec it (returns only if exec fails)."""
    if processes <= 1:
        argv = celery_worker_argv(args)
        if cwd:
            os.chdir(cwd)
        os.execv(argv[0], argv)
    supervisor = Supervisor(celery_worker_argv(args), processes, cwd=cwd,
                            stop_timeout=stop_timeout)
    return supervisor.run()
