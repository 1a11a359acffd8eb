"""``hub keys``: encryption keys for secrets at rest."""

from __future__ import annotations

from typing import Any

import click
import redis

from hub.calls.auth import oauth2
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx
from hub.platform import vault
from hub.platform.services import Services


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

    Covers the database's secrets and the OAuth2 access tokens cached in Redis
    (those no key opens are dropped and refetched when used). Safe while workers
    run: every configured key still decrypts, and rows are locked one short batch
    at a time. Exits 1 if a stored secret no key opens was found.
    """
    svc = ctx.services
    report = vault.rotate_all(svc.sessions, svc.vault, batch_size=batch_size)
    document: dict[str, Any] = {"rotated": report.rotated, "failed": report.failed,
                                "ok": report.ok}
    lines = [f"{table}: {count} re-encrypted" for table, count in report.rotated.items()]
    for table, owners in report.failed.items():
        lines += [f"{table}: cannot decrypt {owner}" for owner in owners]
    document["cached_tokens"], line = _rotate_cached_tokens(svc)
    emit(ctx, document, text="\n".join([*lines, line]))
    if not report.ok:
        raise SystemExit(1)


def _rotate_cached_tokens(svc: Services) -> tuple[dict[str, Any], str]:
    # Not fatal when Redis is down: a cached token no key opens is refetched anyway.
    try:
        count = oauth2.rotate_cached_tokens(svc.redis, svc.vault, svc.settings)
    except (redis.RedisError, OSError):
        line = ("cached OAuth2 tokens: not rotated, Redis unavailable (unreadable ones "
                "are refetched when used)")
        return {"error": "Redis unavailable"}, line
    line = (f"cached OAuth2 tokens: {count.rotated} re-encrypted, {count.dropped} dropped "
            "(no key opens them; refetched when used)")
    return {"rotated": count.rotated, "dropped": count.dropped}, line
