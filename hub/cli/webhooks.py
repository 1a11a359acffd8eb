"""``hub webhooks``: the inbound webhook endpoints a provider posts to."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx, read_stdin
from hub.platform.db import transaction
from hub.webhooks import endpoints
from hub.webhooks.signatures import DEFAULT_TOLERANCE, ENCODINGS, SCHEME_NAMES

LIST_COLUMNS = ("id", "source", "scheme", "active", "received_count", "rejected_count", "url")


def _read_secret() -> str:
    # Secrets travel on stdin, never in argv (visible in ps and shell history).
    secret = read_stdin().strip()
    if not secret:
        raise click.UsageError("--secret-stdin given but stdin is empty")
    return secret


def _locator(what: str, header: str | None, path: str | None) -> dict[str, str] | None:
    if header and path:
        raise click.UsageError(f"--{what}-header and --{what}-path exclude each other")
    if header:
        return {"header": header}
    return {"path": path} if path else None


@cli.group()
def webhooks() -> None:
    """Inbound webhook endpoints: add, list, show, disable, enable, rotate-secret."""


@webhooks.command("add")
@click.option("--tenant", required=True)
@click.option("--source", required=True, help="Provider name in the URL, e.g. stripe.")
@click.option("--scheme", required=True, type=click.Choice(SCHEME_NAMES))
@click.option("--secret-stdin", is_flag=True, help="Read the provider's signing secret "
              "from stdin; without it one is generated and printed once.")
@click.option("--tolerance", type=click.IntRange(min=1), default=DEFAULT_TOLERANCE,
              show_default=True, help="Seconds a signed timestamp may be off.")
@click.option("--allow-ip", "allow_ips", multiple=True, help="CIDR allowed to post (repeat).")
@click.option("--event-type", "event_types", multiple=True,
              help="Accepted event type, glob allowed (repeat); others are acknowledged "
                   "and dropped.")
@click.option("--header", help="Signature header of the generic hmac-sha256 scheme.")
@click.option("--encoding", type=click.Choice(ENCODINGS), help="hmac-sha256 digest encoding.")
@click.option("--prefix", help="hmac-sha256 signature prefix, e.g. sha256=.")
@click.option("--rate-limit", type=click.IntRange(min=1), help="Requests per minute.")
@click.option("--id-header", help="Header holding the sender's event id (deduplication).")
@click.option("--id-path", help="JMESPath to the event id in the JSON body, e.g. data.id.")
@click.option("--type-header", help="Header holding the event type.")
@click.option("--type-path", help="JMESPath to the event type in the JSON body, e.g. type.")
@json_option
@pass_ctx
def add(ctx: CliContext, tenant: str, source: str, scheme: str, secret_stdin: bool,
        tolerance: int, allow_ips: tuple[str, ...], event_types: tuple[str, ...],
        header: str | None, encoding: str | None, prefix: str | None,
        rate_limit: int | None, id_header: str | None, id_path: str | None,
        type_header: str | None, type_path: str | None) -> None:
    """Register an endpoint and print its id, token and URL."""
    spec = endpoints.EndpointSpec(
        tenant=tenant, source=source, scheme=scheme,
        secrets=[_read_secret()] if secret_stdin else None, tolerance=tolerance,
        allowed_ips=allow_ips, event_types=event_types, rate_limit_per_minute=rate_limit,
        config={"header": header, "encoding": encoding, "prefix": prefix,
                "event_id": _locator("id", id_header, id_path),
                "event_type": _locator("type", type_header, type_path)})
    with transaction(ctx.services.sessions) as session:
        created = endpoints.create(session, ctx.services.vault, ctx.settings, spec)
    document: dict[str, Any] = {"id": str(created.id), "token": created.token,
                                "url": created.url}
    if created.generated_secret is not None:
        # Shown this once: only the encrypted copy is kept.
        document["secret"] = created.generated_secret.reveal()
    emit(ctx, document, text="\n".join(f"{k}: {v}" for k, v in document.items()))


@webhooks.command("list")
@click.option("--tenant", required=True)
@json_option
@pass_ctx
def list_(ctx: CliContext, tenant: str) -> None:
    """List a tenant's endpoints."""
    with ctx.services.sessions() as session:
        rows = endpoints.list_endpoints(session, ctx.settings, tenant)
    emit(ctx, rows, columns=LIST_COLUMNS)


@webhooks.command()
@click.option("--tenant", required=True)
@click.option("--id", "endpoint_id", required=True)
@json_option
@pass_ctx
def show(ctx: CliContext, tenant: str, endpoint_id: str) -> None:
    """Show one endpoint (never its secrets)."""
    with ctx.services.sessions() as session:
        emit(ctx, endpoints.show(session, ctx.settings, tenant, endpoint_id))


def _set_active(ctx: CliContext, tenant: str, endpoint_id: str, active: bool) -> None:
    with transaction(ctx.services.sessions) as session:
        described = endpoints.set_active(session, ctx.settings, tenant, endpoint_id, active)
    emit(ctx, described,
         text=f"webhook endpoint {endpoint_id} {'enabled' if active else 'disabled'}")


@webhooks.command()
@click.option("--tenant", required=True)
@click.option("--id", "endpoint_id", required=True)
@json_option
@pass_ctx
def disable(ctx: CliContext, tenant: str, endpoint_id: str) -> None:
    """Disable an endpoint: it answers 404 (within a few seconds on running web processes)."""
    _set_active(ctx, tenant, endpoint_id, False)


@webhooks.command()
@click.option("--tenant", required=True)
@click.option("--id", "endpoint_id", required=True)
@json_option
@pass_ctx
def enable(ctx: CliContext, tenant: str, endpoint_id: str) -> None:
    """Enable a disabled endpoint."""
    _set_active(ctx, tenant, endpoint_id, True)


@webhooks.command("rotate-secret")
@click.option("--tenant", required=True)
@click.option("--id", "endpoint_id", required=True)
@click.option("--secret-stdin", is_flag=True, help="Read the new secret from stdin; "
              "without it one is generated and printed once.")
@json_option
@pass_ctx
def rotate_secret(ctx: CliContext, tenant: str, endpoint_id: str, secret_stdin: bool) -> None:
    """Make a new secret current; the previous one stays accepted until the next rotation."""
    with transaction(ctx.services.sessions) as session:
        generated = endpoints.rotate_secret(session, ctx.services.vault, tenant, endpoint_id,
                                            _read_secret() if secret_stdin else None)
    document: dict[str, Any] = {"id": endpoint_id, "rotated": True}
    if generated is not None:
        document["secret"] = generated.reveal()
    emit(ctx, document, text="\n".join(f"{k}: {v}" for k, v in document.items()))
