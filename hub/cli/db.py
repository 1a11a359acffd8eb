"""``hub db``: schema migrations (the release step)."""

from __future__ import annotations

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.platform import migrate


@cli.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.option("--revision", default="head", show_default=True)
@json_option
@pass_ctx
def upgrade(ctx: CliContext, revision: str) -> None:
    """Apply migrations up to REVISION (safe to run from several releases at once)."""
    migrate.upgrade(ctx.settings, revision)
    emit(ctx, {"revision": migrate.current(ctx.settings)},
         text=f"database at revision {migrate.current(ctx.settings)}")


@db.command()
@click.argument("revision")
@json_option
@pass_ctx
def downgrade(ctx: CliContext, revision: str) -> None:
    """Revert migrations down to REVISION ('base' drops every hub table)."""
    migrate.downgrade(ctx.settings, revision)
    emit(ctx, {"revision": migrate.current(ctx.settings)},
         text=f"database at revision {migrate.current(ctx.settings) or 'base'}")


@db.command()
@json_option
@pass_ctx
def current(ctx: CliContext) -> None:
    """Print the revision the database is at."""
    rev = migrate.current(ctx.settings)
    emit(ctx, {"revision": rev}, text=rev or "base (no migrations applied)")
