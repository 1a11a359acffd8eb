"""``hub adapters``: the installed adapters, built-in and plugins (entry point group
``hub.adapters``), and plugins that failed to load."""

from __future__ import annotations

from typing import Any

from hub import adapters as registry
from hub.cli.main import CliContext, cli, emit, json_option, pass_ctx

COLUMNS = ("name", "version", "source", "operations")


@cli.group()
def adapters() -> None:
    """Installed adapters."""


@adapters.command("list")
@json_option
@pass_ctx
def list_(ctx: CliContext) -> None:
    """Every adapter this process can use (a worker sees the same when it has the same
    packages installed), and plugin entry points that failed to load."""
    rows: list[dict[str, Any]] = [
        {"name": name, "version": adapter.version, "source": registry.source_of(name),
         "operations": ", ".join(op.name for op in adapter.operations)}
        for name, adapter in sorted(registry.registry().items())]
    problems = [{"name": p.entry_point, "version": None,
                 "source": f"plugin {p.distribution or '?'}",
                 "operations": f"NOT LOADED: {p.error}"} for p in registry.plugin_problems()]
    emit(ctx, rows + problems, columns=COLUMNS)
