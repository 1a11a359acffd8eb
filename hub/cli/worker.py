"""``hub worker``: the Procfile's worker, one Celery worker process per core and one more."""

from __future__ import annotations

import sys

import click

from hub.cli.main import cli
from hub.ops import workers
from hub.platform.config import load_settings


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                               "help_option_names": ["--hub-help"]})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run HUB_WORKER_PROCESSES Celery workers (default: one per CPU and one more), each
    `celery -A tasks worker CELERY_ARGS` with a hostname of its own (worker1@%h,
    worker2@%h...; a --hostname name@host given becomes name1@host...). Signals
    are passed on to every worker (SIGTERM: soft shutdown); a worker that exits on
    its own stops the others and `hub worker` exits with its status. With
    HUB_WORKER_METRICS_PORT the first serves all their metrics on that port.
    (--hub-help shows this; --help is Celery's.)"""
    settings = load_settings()
    processes = settings.worker_processes or workers.default_processes()
    stop_timeout = settings.worker_soft_shutdown_timeout + 30
    sys.exit(workers.run(celery_args, processes, stop_timeout=stop_timeout))
