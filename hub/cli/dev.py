"""``hub dev`` and ``hub health``: run everything locally; check dependencies."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click

from hub.cli.main import CliContext, cli, emit, format_table, json_option, pass_ctx
from hub.dev import running, server
from hub.ops import healthchecks
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.errors import ConfigError, NotFound


@cli.group(invoke_without_command=True)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              show_default=".hub/dev of this checkout",
              help="Where embedded servers and dev secrets live.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")),
              show_default="$PORT or 8000", help="Webhook app port.")
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option("--worker-metrics-port", type=int, default=9808, show_default=True,
              help="Where the worker serves its Prometheus metrics.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Tasks the worker runs at once (default: HUB_WORKER_CONCURRENCY, 64 threads).")
@json_option
@click.pass_context
def dev(click_ctx: click.Context, state_dir: Path | None, host: str, port: int,
        flower_port: int, worker_metrics_port: int, concurrency: int | None) -> None:
    """Run the whole hub locally until Ctrl-C: web, worker, beat and Flower.

    Uses the PostgreSQL and Redis of HUB_DATABASE_URL / HUB_REDIS_URL (default:
    local servers) and starts embedded ones when they do not answer; applies
    migrations first. One per checkout: a second one refuses to start. A hub
    command in another terminal of the checkout uses its servers (or: eval
    "$(hub dev env)"). With --json, one JSON document (URLs, settings) on stdout
    and the processes' output on stderr.
    """
    state = (state_dir or running.find_state_dir()).resolve()
    click_ctx.obj.dev_state_dir = state
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: CliContext = click_ctx.obj
    with running.hold(state):
        _run(ctx, state, server.prepare(state, host=host, web_port=port,
                                        flower_port=flower_port, concurrency=concurrency,
                                        worker_metrics_port=worker_metrics_port))


def _run(ctx: CliContext, state: Path, plan: server.DevPlan) -> None:
    try:
        from honcho.manager import Manager
        from honcho.printer import Printer
    except ImportError:
        raise ConfigError("hub dev needs the local extra: pip install -e '.[local]'") from None

    try:
        migrate.upgrade(load_settings(plan.env))
        running.write(state, env=plan.env, urls=plan.urls)
        if ctx.json:
            click.echo(json.dumps({"urls": plan.urls, "notes": plan.notes,
                                   "env": running.read(state)["env"]},  # type: ignore[index]
                                  sort_keys=True))
        else:
            for note in plan.notes:
                click.echo(f"hub dev: {note}")
            for name, url in plan.urls.items():
                click.echo(f"hub dev: {name:14} {url}")
            click.echo('hub dev: another terminal of this checkout reaches it with `hub ...` '
                       'as it is, other programs with eval "$(hub dev env)"')
        # With --json, stdout carries the one document; the processes talk on stderr.
        manager = Manager(Printer(sys.stderr if ctx.json else sys.stdout))
        for name, command in plan.processes.items():
            manager.add_process(name, command, env={**plan.env, **plan.process_env.get(name, {})},
                                cwd=str(_project_root()))
        manager.loop()
    finally:
        if plan.local is not None:
            plan.local.stop()
    sys.exit(manager.returncode or 0)


@dev.command("env")
@json_option
@pass_ctx
def dev_env(ctx: CliContext) -> None:
    """The settings that reach the running hub dev of this checkout, as shell exports:
    eval "$(hub dev env)". Exit 1 when none runs."""
    state = ctx.dev_state_dir or running.find_state_dir()
    found = running.read(state)
    if found is None:
        raise NotFound(f"no hub dev is running in {state}")
    emit(ctx, found["env"], text="\n".join(f"export {k}={shlex.quote(v)}"
                                           for k, v in sorted(found["env"].items())))


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
