"""``hub cache``: response cache counters and invalidation."""

from __future__ import annotations

from typing import Any

import click

from hub.calls import cache as response_cache
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx

STATS_COLUMNS = ("tenant", "integration", "operation", "hits", "misses", "stale",
                 "revalidated", "stores", "entries", "hit_rate")


@cli.group("cache")
def cache_group() -> None:
    """Response cache (Redis L1, PostgreSQL L2): counters and invalidation."""


@cache_group.command("stats")
@click.option("--tenant", help="Only this tenant.")
@json_option
@pass_ctx
def stats(ctx: CliContext, tenant: str | None) -> None:
    """Hits, misses, stores and live entries per tenant, integration and operation."""
    emit(ctx, response_cache.stats(ctx.services, tenant), columns=STATS_COLUMNS)


@cache_group.command("invalidate")
@click.option("--tenant", required=True)
@click.option("--integration", help="Integration name or id (default: every integration).")
@click.option("--operation", help="Operation name (default: every operation).")
@click.option("--key", help="One entry's key (sha256 hex), as shown in logs.")
@json_option
@pass_ctx
def invalidate(ctx: CliContext, tenant: str, integration: str | None, operation: str | None,
               key: str | None) -> None:
    """Drop cached answers from both layers: one --key, or everything under
    TENANT [/ INTEGRATION] [/ OPERATION]."""
    removed = response_cache.invalidate(ctx.services, tenant, integration, operation, key=key)
    document: dict[str, Any] = {"tenant": tenant, "integration": integration,
                                "operation": operation, "key": key, "removed": removed}
    emit(ctx, document, text=f"removed {removed['database']} cached answer(s) from PostgreSQL "
                             f"and {removed['redis']} from Redis")
