"""``hub oauth connect``: start the OAuth2 authorization-code flow of an integration."""

from __future__ import annotations

import click

from hub.calls.auth import connect as connect_flow
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx


@cli.group()
def oauth() -> None:
    """OAuth2 authorization-code connections."""


@oauth.command()
@click.option("--tenant", required=True)
@click.option("--integration", required=True)
@json_option
@pass_ctx
def connect(ctx: CliContext, tenant: str, integration: str) -> None:
    """Print the provider's authorization URL (single use, expiring, with PKCE). The
    person who grants access opens it; the provider then returns to the web app's
    /oauth/callback, which stores the tokens and marks the integration connected."""
    started = connect_flow.start(ctx.services, tenant, integration)
    document = {"tenant": tenant, "integration": integration,
                "authorize_url": started.authorize_url, "redirect_uri": started.redirect_uri,
                "expires_at": started.expires_at.isoformat()}
    emit(ctx, document, text=(
        f"Open this URL in a browser and grant access to {tenant}/{integration}:\n\n"
        f"  {started.authorize_url}\n\n"
        f"It works once, until {started.expires_at:%Y-%m-%d %H:%M:%S} UTC; the provider "
        f"returns to {started.redirect_uri}."))
