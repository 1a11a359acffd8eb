"""``hub integrations test``: a health check through the integration's adapter."""

from __future__ import annotations

import sys

import click

from hub.calls import probe
from hub.cli.integrations import integrations, name_option
from hub.cli.main import CliContext, emit, json_option, pass_ctx


@integrations.command("test")
@click.option("--tenant", required=True)
@name_option
@json_option
@pass_ctx
def test(ctx: CliContext, tenant: str, name: str) -> None:
    """Probe the provider with the adapter's health request (authenticated); exit 1 if it
    fails."""
    report = probe.probe(ctx.services, tenant, name)
    status = f"HTTP {report['status_code']}" if report["status_code"] else "no answer"
    emit(ctx, report, text=f"{name}: {'ok' if report['ok'] else 'FAILED'} ({status}, "
                           f"{report['duration_ms']} ms)"
                           + (f": {report['error']}" if report["error"] else ""))
    if not report["ok"]:
        sys.exit(1)
