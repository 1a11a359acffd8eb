"""``hub usage``: calls and estimated cost per day, integration or operation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from hub.calls import integrations
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.cli.timefilters import parse_when
from hub.ops import usage as usage_report

DEFAULT_SINCE = "30d"


@cli.command("usage")
@click.option("--tenant", required=True)
@click.option("--integration", help="Only this integration.")
@click.option("--since", default=DEFAULT_SINCE, show_default=True, callback=parse_when,
              help="From this UTC day on (ISO 8601, or an age: 30m, 2h, 7d).")
@click.option("--by", type=click.Choice(usage_report.GROUPINGS), default="day",
              show_default=True, help="One row per day, per integration, or per operation.")
@json_option
@pass_ctx
def usage(ctx: CliContext, tenant: str, integration: str | None, since: datetime | None,
          by: usage_report.Grouping) -> None:
    """Calls (attempts), successes, failures, cached answers, rate-limited calls and
    estimated cost. Rolls up the audit rows written so far first, so it is current."""
    usage_report.rollup(ctx.services)
    start = (since or datetime.now(UTC) - timedelta(days=30)).astimezone(UTC).date()
    with ctx.services.sessions() as session:
        integration_id = integrations.get(session, tenant, integration).id \
            if integration else None
        rows = usage_report.report(session, tenant, since=start, by=by,
                                   integration_id=integration_id)
    keys = {"day": ("day",), "integration": ("integration",),
            "operation": ("integration", "operation")}[by]
    emit(ctx, rows, columns=(*keys, *usage_report.COUNTERS, "cost"))
