"""``hub dlq list|show|replay|resolve|purge``: the dead-letter table (DESIGN §4, §8)."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.cli.timefilters import time_options
from hub.ops import dlq as dead_letters
from hub.platform.db import transaction
from hub.platform.models import DEAD_LETTER_RESOLUTIONS

COLUMNS = ("id", "tenant", "origin", "task_name", "integration", "error_code", "attempts",
           "last_failed_at", "replayed_at", "resolved")


def _filter_options(func):
    for option in (
        click.option("--origin", type=click.Choice(["call", "webhook", "delivery", "poison"])),
        click.option("--code", help="Error code, e.g. UPSTREAM_ERROR, TIMEOUT."),
        click.option("--endpoint", help="Webhook endpoint id."),
        click.option("--integration", help="Integration name."),
        click.option("--tenant"),
    ):
        func = option(func)
    return time_options(func)


def _filters(tenant: str | None, integration: str | None, endpoint: str | None,
             code: str | None, origin: str | None, since: datetime | None,
             until: datetime | None, include_replayed: bool = True) -> dead_letters.Filters:
    import uuid

    try:
        endpoint_id = uuid.UUID(endpoint) if endpoint else None
    except ValueError:
        raise click.BadParameter("not a UUID", param_hint="--endpoint") from None
    return dead_letters.Filters(tenant=tenant, integration=integration, endpoint_id=endpoint_id,
                                code=code, origin=origin, since=since, until=until,
                                include_replayed=include_replayed)


@cli.group()
def dlq() -> None:
    """Dead letters: work whose retries are exhausted."""


@dlq.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
@pass_ctx
def list_(ctx: CliContext, limit: int, **options: Any) -> None:
    """Dead letters matching the filters, newest failure first."""
    with ctx.services.sessions() as session:
        rows = [dead_letters.describe(r)
                for r in dead_letters.list_letters(session, _filters(**options), limit=limit)]
    for row in rows:  # the table's one word for it; --json keeps the whole resolution
        row["resolved"] = row["resolution"]["outcome"] if row["resolution"] else None
    emit(ctx, rows, columns=COLUMNS)


@dlq.command()
@click.option("--id", "letter_id", help="The dead letter's id.")
@click.argument("positional_id", metavar="[ID]", required=False)
@click.option("--tenant", help="Refuse a letter of another tenant.")
@json_option
@pass_ctx
def show(ctx: CliContext, letter_id: str | None, positional_id: str | None,
         tenant: str | None) -> None:
    """One dead letter (--id ID) with its original arguments, traceback excerpt, the
    letter it replays (replay_of) and where its own last replay stands (replay)."""
    # The id was positional before the CLI's one convention (--id); both are accepted.
    letter_id = letter_id or positional_id
    if not letter_id:
        raise click.UsageError("give the dead letter's --id")
    with ctx.services.sessions() as session:
        row = dead_letters.get(session, letter_id, tenant)
        emit(ctx, dead_letters.describe_full(session, row))


@dlq.command()
@_filter_options
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--rate", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Replays per second at most.")
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.option("--again", is_flag=True, help="Also replay letters replayed before.")
@json_option
@pass_ctx
def replay(ctx: CliContext, dry_run: bool, rate: float, limit: int, again: bool,
           **options: Any) -> None:
    """Re-enqueue matching dead letters with their original arguments on the replay queue."""
    filters = _filters(**options, include_replayed=again)
    done = dead_letters.replay(ctx.services.sessions, ctx.services.dispatcher, filters,
                               queue=ctx.settings.queue("replay"), dry_run=dry_run, rate=rate,
                               limit=limit)
    verb = "would replay" if dry_run else "replayed"
    emit(ctx, {"dry_run": dry_run, "count": len(done), "letters": done} if ctx.json else done,
         columns=None if ctx.json else ("id", "task_name", "integration", "error_code",
                                        "replay_task_id"))
    if not ctx.json:
        click.echo(f"{verb} {len(done)} dead letter(s)")


@dlq.command()
@click.option("--id", "letter_id", required=True, help="The dead letter's id.")
@click.option("--outcome", required=True, type=click.Choice(DEAD_LETTER_RESOLUTIONS),
              help="What the provider says: it carried out the write (succeeded) or "
                   "never got it (failed).")
@click.option("--note", help="Why: the provider's reference, a ticket...")
@click.option("--by", "by", help="Who reconciled it (default: the user running hub).")
@click.option("--tenant", help="Refuse a letter of another tenant.")
@json_option
@pass_ctx
def resolve(ctx: CliContext, letter_id: str, outcome: str, note: str | None, by: str | None,
            tenant: str | None) -> None:
    """Close an OUTCOME_UNKNOWN call's dead letter after checking with the provider.

    succeeded: later calls with its idempotency key get a result saying so; failed:
    the key is freed for the caller to send again. Either way the letter is never
    replayed. Letters of any other error are refused (replay or purge those).
    """
    with transaction(ctx.services.sessions) as session:
        row = dead_letters.resolve(session, letter_id, outcome, by=by or _operator(),
                                   note=note, tenant=tenant)
        view = dead_letters.describe(row)
    emit(ctx, view, text=f"dead letter {view['id']} resolved: {outcome} "
                         f"(by {view['resolution']['by']})")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's numeric uid)
        return "unknown"


@dlq.command()
@_filter_options
@click.option("--all", "everything", is_flag=True, help="Allow purging without any filter.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
@pass_ctx
def purge(ctx: CliContext, everything: bool, dry_run: bool, **options: Any) -> None:
    """Delete matching dead letters (refuses to delete everything without --all)."""
    filters = _filters(**options)
    if not filters.clauses() and not everything:
        raise click.UsageError("give at least one filter, or --all to purge every dead letter")
    if dry_run:
        with ctx.services.sessions() as session:
            count = dead_letters.count(session, filters)
    else:
        with transaction(ctx.services.sessions) as session:
            count = dead_letters.purge(session, filters)
    emit(ctx, {"dry_run": dry_run, "purged": 0 if dry_run else count, "matched": count},
         text=f"{'would purge' if dry_run else 'purged'} {count} dead letter(s)")
