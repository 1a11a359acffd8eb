"""``hub events``: the webhook inbox (list, show, replay)."""

from __future__ import annotations

from datetime import datetime

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.cli.timefilters import time_options
from hub.webhooks import inbox, processing

LIST_COLUMNS = ("id", "type", "status", "attempts", "received_at", "last_error")


@cli.group("events")
def events_group() -> None:
    """Inbound webhook events."""


@events_group.command("list")
@click.option("--tenant", required=True)
@click.option("--status", type=click.Choice(inbox.STATUSES))
@click.option("--source", help="Only events of this provider, e.g. stripe.")
@time_options
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
@pass_ctx
def list_(ctx: CliContext, tenant: str, status: str | None, source: str | None,
          since: datetime | None, until: datetime | None, limit: int) -> None:
    """The tenant's most recent events (received in the time given), newest first."""
    with ctx.services.sessions() as session:
        rows = inbox.list_events(session, tenant, status=status, source=source,
                                 since=since, until=until, limit=limit)
    emit(ctx, rows, columns=LIST_COLUMNS)


@events_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "event_id", required=True)
@json_option
@pass_ctx
def show(ctx: CliContext, tenant: str, event_id: str) -> None:
    """One event: payload, headers (credentials masked) and its deliveries."""
    with ctx.services.sessions() as session:
        emit(ctx, inbox.show_event(session, tenant, event_id))


@events_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "event_id", required=True)
@click.option("--redeliver", is_flag=True,
              help="Also send its existing deliveries again (same webhook-id); one that "
                   "already has a send pending is sent once, by that send.")
@json_option
@pass_ctx
def replay(ctx: CliContext, tenant: str, event_id: str, redeliver: bool) -> None:
    """Process an event again (processed, failed or dead): handlers, events, fan-out."""
    result = processing.replay_event(ctx.services, event_id, tenant=tenant, redeliver=redeliver)
    pending = (f", {result['already_pending']} already pending (sent once)"
               if result["already_pending"] else "")
    emit(ctx, result, text=f"event {event_id} queued for processing "
                           f"({result['redelivered']} deliveries re-sent{pending})")
