"""``hub deliveries``: outbound deliveries to subscribers (list, show, retry, replay)."""

from __future__ import annotations

import uuid

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.cli.timefilters import parse_when
from hub.deliveries import sending
from hub.platform.models import DELIVERY_STATUSES

LIST_COLUMNS = ("id", "event_type", "status", "attempts", "last_status_code",
                "next_attempt_at", "message_id")


def _uuid(_ctx: click.Context, _param: click.Parameter, value: str | None) -> uuid.UUID | None:
    try:
        return None if value is None else uuid.UUID(value)
    except ValueError:
        raise click.BadParameter("not an id") from None


def filter_options(func):
    """The options shared by ``list`` and ``replay``."""
    for option in reversed((
        click.option("--tenant", required=True),
        click.option("--subscription", "subscription_id", callback=_uuid),
        click.option("--event-type", help="Pattern over <source>.<event_type>, e.g. stripe.*"),
        click.option("--since", callback=parse_when,
                     help="Created at or after (ISO 8601, or an age: 30m, 2h, 7d)."),
        click.option("--until", callback=parse_when,
                     help="Created before (ISO 8601, or an age: 30m, 2h, 7d)."),
        click.option("--status", "statuses", multiple=True,
                     type=click.Choice(DELIVERY_STATUSES), help="Repeat for several."),
        click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True),
    )):
        func = option(func)
    return func


def _filter(**kwargs: object) -> sending.DeliveryFilter:
    return sending.DeliveryFilter(**kwargs)  # type: ignore[arg-type]


@cli.group("deliveries")
def deliveries_group() -> None:
    """Outbound deliveries of inbound events to subscribers."""


@deliveries_group.command("list")
@filter_options
@json_option
@pass_ctx
def list_(ctx: CliContext, **kwargs: object) -> None:
    """Deliveries matching the filters, newest first."""
    with ctx.services.sessions() as session:
        rows = [sending.view(d) for d in sending.find(session, _filter(**kwargs),
                                                           newest_first=True)]
    emit(ctx, rows, columns=LIST_COLUMNS)


@deliveries_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "delivery_id", required=True)
@json_option
@pass_ctx
def show(ctx: CliContext, tenant: str, delivery_id: str) -> None:
    """One delivery and each of its attempts (status, response excerpt, duration)."""
    with ctx.services.sessions() as session:
        emit(ctx, sending.show(session, tenant, delivery_id))


@deliveries_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "delivery_id", required=True)
@json_option
@pass_ctx
def retry(ctx: CliContext, tenant: str, delivery_id: str) -> None:
    """Send one delivery again now, with a fresh retry schedule. If a send of it is
    already pending (queued, paced by a replay, or on the wire), it is sent once:
    a queued one is brought forward, one on the wire is left to finish."""
    document = sending.retry(ctx.services, tenant, delivery_id)
    emit(ctx, document, text=f"delivery {delivery_id} "
                             + ("already had a send pending: it is sent once"
                                if document["already_pending"] else "queued"))


@deliveries_group.command()
@filter_options
@click.option("--dry-run", is_flag=True, help="Only list what would be sent.")
@click.option("--rate", type=click.FloatRange(min=0.001, min_open=False),
              help="Deliveries per second: scheduled in PostgreSQL and sent by beat "
                   "(default: all at once on the replay queue).")
@json_option
@pass_ctx
def replay(ctx: CliContext, dry_run: bool, rate: float | None, **kwargs: object) -> None:
    """Send a filtered set again, keeping each webhook-id. A delivery that already has
    a send pending (queued, paced, on the wire) is left to it and counted as already
    pending: it is sent once."""
    result = sending.replay(ctx.services, _filter(**kwargs), dry_run=dry_run, rate=rate)
    verb = "would replay" if dry_run else "replaying"
    paced = (f", the last at {result['last_scheduled_at']:%Y-%m-%d %H:%M:%S} UTC"
             if "last_scheduled_at" in result else "")
    emit(ctx, result, text=f"{verb} {result['count']} deliveries "
                           f"({result['already_pending']} already pending, "
                           f"{result['skipped_inactive']} of disabled subscriptions skipped)"
                           f"{paced}")
