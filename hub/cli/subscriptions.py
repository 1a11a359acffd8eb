"""``hub subscriptions``: services that receive inbound events, signed (Standard Webhooks)."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.deliveries import subscriptions
from hub.platform import events
from hub.platform.db import transaction

LIST_COLUMNS = ("id", "url", "events", "active", "consecutive_failures", "disabled_reason")


def _schedule(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("expected comma-separated seconds, e.g. 5,300,1800") from None


@cli.group("subscriptions")
def subscriptions_group() -> None:
    """Subscribers that inbound events are delivered to."""


@subscriptions_group.command("add")
@click.option("--tenant", required=True)
@click.option("--url", required=True, help="Callback URL the events are POSTed to.")
@click.option("--events", "patterns", multiple=True,
              help="Event-type pattern over <source>.<event_type>, e.g. 'stripe.*' (repeat; "
                   "none = every event).")
@click.option("--retry-schedule", callback=_schedule,
              help="Waits between attempts in seconds, e.g. 5,300,1800 (default: the tenant's).")
@json_option
@pass_ctx
def add(ctx: CliContext, tenant: str, url: str, patterns: tuple[str, ...],
        retry_schedule: list[float] | None) -> None:
    """Add a subscription; its whsec_ secret is printed this once and never again."""
    svc = ctx.services
    with transaction(svc.sessions) as session:
        new = subscriptions.add(session, svc.vault, svc.settings, tenant=tenant, url=url,
                                event_types=patterns, retry_schedule=retry_schedule)
        document = {"id": str(new.subscription.id), "secret": new.secret.reveal()}
    emit(ctx, document, text="\n".join(f"{k}: {v}" for k, v in document.items()))


@subscriptions_group.command("list")
@click.option("--tenant", required=True)
@click.option("--active/--all", "only_active", default=False,
              help="Only active subscriptions (default: all).")
@json_option
@pass_ctx
def list_(ctx: CliContext, tenant: str, only_active: bool) -> None:
    """List a tenant's subscriptions (never their secrets)."""
    with ctx.services.sessions() as session:
        rows = subscriptions.list_for(session, tenant, active=True if only_active else None)
        emit(ctx, [subscriptions.view(r) for r in rows], columns=LIST_COLUMNS)


@subscriptions_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "subscription_id", required=True)
@click.option("--reason", default="disabled by an operator", show_default=True)
@json_option
@pass_ctx
def disable(ctx: CliContext, tenant: str, subscription_id: str, reason: str) -> None:
    """Stop deliveries; waiting retries are cancelled (replay them after enabling)."""
    with transaction(ctx.services.sessions) as session:
        sub = subscriptions.get(session, tenant, subscription_id, lock=True)
        subscriptions.disable(session, sub, reason)
        document = subscriptions.view(sub)
    events.publish(ctx.services.events, "subscription.disabled", tenant,
                   {"subscription_id": document["id"], "reason": reason})
    emit(ctx, document, text=f"subscription {subscription_id} disabled")


@subscriptions_group.command()
@click.option("--tenant", required=True)
@click.option("--id", "subscription_id", required=True)
@json_option
@pass_ctx
def enable(ctx: CliContext, tenant: str, subscription_id: str) -> None:
    """Resume deliveries with a clean failure record."""
    with transaction(ctx.services.sessions) as session:
        sub = subscriptions.get(session, tenant, subscription_id, lock=True)
        subscriptions.enable(sub)
        document = subscriptions.view(sub)
    emit(ctx, document, text=f"subscription {subscription_id} enabled")


@subscriptions_group.command("rotate-secret")
@click.option("--tenant", required=True)
@click.option("--id", "subscription_id", required=True)
@click.option("--drop-previous", is_flag=True,
              help="Forget the old secret now (default: keep signing with both).")
@json_option
@pass_ctx
def rotate_secret(ctx: CliContext, tenant: str, subscription_id: str,
                  drop_previous: bool) -> None:
    """Make a new secret current and print it once; deliveries carry both signatures."""
    with transaction(ctx.services.sessions) as session:
        sub = subscriptions.get(session, tenant, subscription_id, lock=True)
        secret = subscriptions.rotate_secret(ctx.services.vault, sub,
                                             keep_previous=not drop_previous)
        document = {"id": subscription_id, "secret": secret.reveal()}
    emit(ctx, document, text="\n".join(f"{k}: {v}" for k, v in document.items()))
