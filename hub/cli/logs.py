"""``hub logs``: the audit trail of outbound calls (integration_logs), redacted."""

from __future__ import annotations

from datetime import datetime

import click

from hub.calls import audit, integrations
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.cli.timefilters import time_options
from hub.platform.models import LOG_OUTCOMES

COLUMNS = ("started_at", "tenant", "integration", "operation", "method", "status_code", "outcome", "attempt",
           "duration_ms", "url", "error")


@cli.command("logs")
@click.option("--tenant")
@click.option("--integration", help="Integration name (needs --tenant).")
@click.option("--operation")
@click.option("--outcome", type=click.Choice(LOG_OUTCOMES))
@click.option("--task-id")
@time_options
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--full", is_flag=True, help="Include (redacted) headers and bodies.")
@json_option
@pass_ctx
def logs(ctx: CliContext, tenant: str | None, integration: str | None, operation: str | None,
         outcome: str | None, task_id: str | None, since: datetime | None,
         until: datetime | None, limit: int, full: bool) -> None:
    """Audit rows of outbound calls, newest first."""
    if integration and not tenant:
        raise click.UsageError("--integration needs --tenant (names are per tenant)")
    with ctx.services.sessions() as session:
        integration_id = integrations.get(session, tenant, integration).id \
            if integration and tenant else None
        filters = audit.LogFilters(tenant=tenant, integration_id=integration_id,
                                   operation=operation, outcome=outcome, task_id=task_id,
                                   since=since, until=until)
        found = audit.query(session, filters, limit=limit)
        names = audit.integration_names(session, found)
        rows = [audit.describe(r, full=full, names=names) for r in found]
    emit(ctx, rows, columns=None if full else COLUMNS)
