"""``hub integrations`` and ``hub credentials``: the integrations registry."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from hub.calls import integrations as registry
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx, read_json_stdin
from hub.ops import deletion
from hub.platform.db import transaction

LIST_COLUMNS = ("tenant", "name", "adapter", "auth_type", "status", "health_status", "base_url",
                "adapter_check")


def _json_object(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg})") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    return parsed


def _decimal(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise click.BadParameter("must be a decimal number") from None


@cli.group()
def integrations() -> None:
    """Register, inspect and switch integrations."""


def name_option(func: Any) -> Any:
    """The integration an ``hub integrations`` command acts on: ``--integration``, as
    everywhere else, or ``--name`` (the same option)."""
    return click.option("--name", "--integration", "name", required=True,
                        help="Integration name (unique per tenant).")(func)


@integrations.command("add")
@click.option("--tenant", required=True)
@name_option
@click.option("--adapter", required=True, help="Adapter module, e.g. rest.")
@click.option("--base-url", required=True)
@click.option("--auth-type", type=click.Choice(registry.ACCEPTED_AUTH_TYPES), default="none",
              show_default=True, help="oauth2_hmac (seed 003) is stored as "
              "oauth2_client_credentials with config.auth.hmac.")
@click.option("--config", "config", callback=_json_object, help="Adapter config (JSON object).")
@click.option("--per-minute", type=click.IntRange(min=1))
@click.option("--per-hour", type=click.IntRange(min=1))
@click.option("--per-day", type=click.IntRange(min=1))
@click.option("--priority", type=int, default=0, show_default=True,
              help="Order among fallbacks: higher is tried first.")
@click.option("--cost-per-call", callback=_decimal, default="0", show_default=True)
@click.option("--fallback", help="Integration that serves a call this one cannot (timeout, "
              "5xx, quota spent, open circuit, degraded health); its own fallback follows.")
@json_option
@pass_ctx
def add(ctx: CliContext, tenant: str, name: str, adapter: str, base_url: str, auth_type: str,
        config: dict[str, Any] | None, per_minute: int | None, per_hour: int | None,
        per_day: int | None, priority: int, cost_per_call: Decimal, fallback: str | None) -> None:
    """Register an integration (credentials are set separately, from stdin)."""
    spec = registry.IntegrationSpec(
        tenant_id=tenant, name=name, adapter=adapter, base_url=base_url, auth_type=auth_type,
        config=config, rate_limit_per_minute=per_minute, rate_limit_per_hour=per_hour,
        rate_limit_per_day=per_day, priority=priority, cost_per_call=cost_per_call,
        fallback=fallback)
    described = registry.describe(registry.register(ctx.services, spec))
    emit(ctx, described, text=f"integration {tenant}/{name} registered ({described['id']})")


@integrations.command("list")
@click.option("--tenant", help="Only this tenant's integrations.")
@json_option
@pass_ctx
def list_(ctx: CliContext, tenant: str | None) -> None:
    """List integrations."""
    with ctx.services.sessions() as session:
        rows = [registry.describe(r) for r in registry.list_for_tenant(session, tenant)]
    for row in rows:
        row["adapter_check"] = row["adapter_compat"]["summary"]
    emit(ctx, rows, columns=LIST_COLUMNS)


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@json_option
@pass_ctx
def show(ctx: CliContext, tenant: str, name: str) -> None:
    """Show one integration (never its credentials)."""
    with ctx.services.sessions() as session:
        described = registry.describe(registry.get(session, tenant, name))
    emit(ctx, described)


def _set_status(ctx: CliContext, tenant: str, name: str, status: str) -> None:
    with transaction(ctx.services.sessions) as session:
        described = registry.describe(registry.set_status(session, tenant, name, status))
    emit(ctx, described, text=f"integration {tenant}/{name} is {status}")


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@json_option
@pass_ctx
def disable(ctx: CliContext, tenant: str, name: str) -> None:
    """Disable an integration: calls to it are refused with INTEGRATION_DISABLED."""
    _set_status(ctx, tenant, name, "disabled")


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@json_option
@pass_ctx
def enable(ctx: CliContext, tenant: str, name: str) -> None:
    """Enable a disabled integration."""
    _set_status(ctx, tenant, name, "active")


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@click.option("--base-url")
@click.option("--auth-type", type=click.Choice(registry.ACCEPTED_AUTH_TYPES))
@click.option("--config", "config", callback=_json_object)
@click.option("--per-minute", type=click.IntRange(min=1))
@click.option("--per-hour", type=click.IntRange(min=1))
@click.option("--per-day", type=click.IntRange(min=1))
@click.option("--cost-per-call", callback=_decimal)
@click.option("--priority", type=int, help="Order among integrations (higher first).")
@click.option("--fallback", help="Name of the integration to use when this one's circuit "
                                 "is open.")
@click.option("--no-fallback", is_flag=True, help="Remove the fallback.")
@json_option
@pass_ctx
def update(ctx: CliContext, tenant: str, name: str, base_url: str | None,
           auth_type: str | None, config: dict[str, Any] | None, per_minute: int | None,
           per_hour: int | None, per_day: int | None, cost_per_call: Decimal | None,
           priority: int | None, fallback: str | None, no_fallback: bool) -> None:
    """Change an integration's settings (only the options given)."""
    if fallback and no_fallback:
        raise click.UsageError("--fallback and --no-fallback exclude each other")
    changes: dict[str, Any] = {k: v for k, v in {
        "base_url": base_url, "auth_type": auth_type, "config": config,
        "rate_limit_per_minute": per_minute, "rate_limit_per_hour": per_hour,
        "rate_limit_per_day": per_day, "cost_per_call": cost_per_call, "priority": priority,
        "fallback": fallback,
    }.items() if v is not None}
    if no_fallback:
        changes["fallback"] = None
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    described = registry.describe(registry.change(ctx.services, tenant, name, **changes))
    emit(ctx, described, text=f"integration {tenant}/{name} updated")


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@json_option
@pass_ctx
def upgrade(ctx: CliContext, tenant: str, name: str) -> None:
    """Accept the installed adapter's version for an integration (after checking a change
    `list` flags): records its version and param schemas."""
    with transaction(ctx.services.sessions) as session:
        described = registry.describe(registry.accept_adapter_version(session, tenant, name))
    emit(ctx, described, text=f"integration {tenant}/{name} now records adapter "
                              f"{described['adapter']} {described['adapter_version']}")


@integrations.command()
@click.option("--tenant", required=True)
@name_option
@click.option("--force", is_flag=True,
              help="Delete even while calls are queued for it (they fail with NOT_FOUND).")
@json_option
@pass_ctx
def delete(ctx: CliContext, tenant: str, name: str, force: bool) -> None:
    """Delete an integration; its audit rows, usage and dead letters are kept. Refused
    while calls are queued for it, unless --force."""
    done = deletion.delete_integration(ctx.services, tenant, name, force=force)
    emit(ctx, done, text=f"integration {tenant}/{name} deleted "
                         f"({done['cancelled_retries']} waiting retries cancelled)")


@cli.group()
def credentials() -> None:
    """Store integration credentials (encrypted; read from stdin, never from argv)."""


@credentials.command("set")
@click.option("--tenant", required=True)
@click.option("--integration", required=True)
@json_option
@pass_ctx
def set_(ctx: CliContext, tenant: str, integration: str) -> None:
    """Read a JSON object of secrets on stdin and store it encrypted.

    Example: echo '{"api_key": "..."}' | hub credentials set --tenant T --integration N
    (or run it without a pipe and type the JSON, then Ctrl-D). The keys must be
    the ones the integration's auth type reads (README: per-integration auth).
    """
    with ctx.services.sessions() as session:
        registry.get(session, tenant, integration)  # an unknown one: NOT_FOUND, stdin unread
    secrets_doc = read_json_stdin("the credentials")
    with transaction(ctx.services.sessions) as session:
        row = registry.set_credentials(session, ctx.services.vault, tenant, integration,
                                       secrets_doc)
        keys = sorted(secrets_doc)
    emit(ctx, {"integration": row.name, "tenant": tenant, "stored_keys": keys},
         text=f"credentials of {tenant}/{integration} stored encrypted "
              f"(keys: {', '.join(keys)})")
