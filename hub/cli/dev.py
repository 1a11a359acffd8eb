"""``hub dev`` and ``hub health``: run everything locally; check dependencies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hub.cli.main import CliContext, cli, emit, format_table, json_option, pass_ctx
from hub.dev import server
from hub.ops import healthchecks
from hub.platform import migrate
from hub.platform.config import load_settings


@cli.command()
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".hub/dev"),
              show_default=True, help="Where embedded servers and dev secrets live.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")),
              show_default="$PORT or 8000", help="Webhook app port.")
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option("--worker-metrics-port", type=int, default=9808, show_default=True,
              help="Where the worker serves its Prometheus metrics.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Tasks the worker runs at once (default: HUB_WORKER_CONCURRENCY, 64 threads).")
def dev(state_dir: Path, host: str, port: int, flower_port: int, worker_metrics_port: int,
        concurrency: int | None) -> None:
    """Run the whole hub locally until Ctrl-C: web, worker, beat and Flower.

    Uses the PostgreSQL and Redis of HUB_DATABASE_URL / HUB_REDIS_URL (default:
    local servers) and starts embedded ones when they do not answer; applies
    migrations first.
    """
    from honcho.manager import Manager

    plan = server.prepare(state_dir.resolve(), host=host, web_port=port,
                          flower_port=flower_port, concurrency=concurrency,
                          worker_metrics_port=worker_metrics_port)
    try:
        migrate.upgrade(load_settings(plan.env))
        for note in plan.notes:
            click.echo(f"hub dev: {note}")
        for name, url in plan.urls.items():
            click.echo(f"hub dev: {name:14} {url}")
        manager = Manager()
        for name, command in plan.processes.items():
            manager.add_process(name, command, env=plan.env, cwd=str(_project_root()))
        manager.loop()
    finally:
        if plan.local is not None:
            plan.local.stop()
    sys.exit(manager.returncode or 0)


def _project_root() -> Path:
    return Path(__file__).resolve().parents[2]


HEALTH_COLUMNS = ("tenant", "integration", "status", "health_status", "last_check_at",
                  "latency_ms", "breaker", "error")


@cli.command()
@click.option("--detailed", is_flag=True,
              help="Also every integration: health status, last check, latency, breaker.")
@click.option("--tenant", help="With --detailed: only this tenant's integrations.")
@json_option
@pass_ctx
def health(ctx: CliContext, detailed: bool, tenant: str | None) -> None:
    """Check PostgreSQL, Redis, the broker and the schema revision; exit 1 if any fails.

    --detailed adds every integration as beat's health checks last saw it (an
    unhealthy integration does not change the exit status)."""
    from hub.ops.health import check_all

    report = check_all(ctx.settings)
    lines = []
    for name, item in report["checks"].items():
        lines.append(f"{name:9} {'ok' if item['ok'] else 'FAIL'}  {item['detail']}")
        lines += [f"{name:9} WARN  {warning}" for warning in item["warnings"]]
    if detailed and report["checks"]["postgres"]["ok"]:
        report["integrations"] = healthchecks.detailed(ctx.services, tenant)
        lines += ["", format_table(report["integrations"], HEALTH_COLUMNS)]
    emit(ctx, report, text="\n".join(lines))
    if not report["ok"]:
        raise SystemExit(1)
