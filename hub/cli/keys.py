"""``hub keys``: encryption keys for secrets at rest."""

from __future__ import annotations

import click

from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.platform import vault


@cli.group()
def keys() -> None:
    """Generate and rotate HUB_ENCRYPTION_KEYS."""


@keys.command()
@json_option
@pass_ctx
def generate(ctx: CliContext) -> None:
    """Print a new Fernet key. Put it FIRST in HUB_ENCRYPTION_KEYS, then `hub keys rotate`."""
    key = vault.generate_key()
    emit(ctx, {"key": key}, text=key)


@keys.command()
@click.option("--batch-size", type=click.IntRange(min=1), default=200, show_default=True)
@json_option
@pass_ctx
def rotate(ctx: CliContext, batch_size: int) -> None:
    """Re-encrypt every stored secret with the current (first) key.

    Safe while workers run: every configured key still decrypts, and rows are
    locked one short batch at a time. Exits 1 if a secret no key opens was found.
    """
    report = vault.rotate_all(ctx.services.sessions, ctx.services.vault, batch_size=batch_size)
    document = {"rotated": report.rotated, "failed": report.failed, "ok": report.ok}
    lines = [f"{table}: {count} re-encrypted" for table, count in report.rotated.items()]
    for table, owners in report.failed.items():
        lines += [f"{table}: cannot decrypt {owner}" for owner in owners]
    emit(ctx, document, text="\n".join(lines))
    if not report.ok:
        raise SystemExit(1)
