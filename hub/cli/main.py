"""The root ``hub`` group, shared options and output helpers.

Exit statuses (DESIGN §8): 0 success, 1 a refused request (any HubError: not
found, conflict, validation...), 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

import click
import psycopg
import redis
from sqlalchemy import exc as sa_exc

from hub.platform.config import Settings, load_settings
from hub.platform.dispatch import Dispatcher
from hub.platform.errors import ConfigError, HubError, ServiceUnavailable
from hub.platform.services import Services

F = TypeVar("F", bound=Callable[..., Any])

#: Set by the process entry point (``tasks.cli``): how the CLI enqueues tasks.
DispatcherFactory = Callable[[], Dispatcher]


@dataclass
class CliContext:
    dispatcher_factory: DispatcherFactory | None = None
    json: bool = False
    _settings: Settings | None = None
    _services: Services | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = Services(self.settings, _LazyDispatcher(self))
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()


class _LazyDispatcher:
    """Builds the real dispatcher (and its broker connection) only when a command sends."""

    def __init__(self, ctx: CliContext) -> None:
        self._ctx = ctx
        self._real: Dispatcher | None = None

    def send(self, name: str, kwargs: dict[str, Any], **options: Any) -> str:
        if self._real is None:
            if self._ctx.dispatcher_factory is None:
                raise click.UsageError("this command needs the task dispatcher "
                                       "(run the `hub` console script)")
            self._real = self._ctx.dispatcher_factory()
        return self._real.send(name, kwargs, **options)


pass_ctx = click.make_pass_decorator(CliContext)


def json_option(func: F) -> F:
    """Add ``--json`` to a command (also accepted before the command name)."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @click.pass_context
    @wraps(func)
    def wrapper(click_ctx: click.Context, *args: Any, as_json: bool, **kwargs: Any) -> Any:
        if as_json:
            click_ctx.find_object(CliContext).json = True  # type: ignore[union-attr]
        return click_ctx.invoke(func, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def emit(ctx: CliContext, document: Any, *, columns: Sequence[str] | None = None,
         text: str | None = None) -> None:
    """Print ``document`` as JSON (``--json``), as a table of ``columns``, or as ``text``."""
    if ctx.json:
        click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))
    elif columns is not None:
        rows = document if isinstance(document, list) else [document]
        click.echo(format_table(rows, columns))
    elif text is not None:
        click.echo(text)
    else:
        click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    if not cells:
        lines.append("(none)")
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def read_stdin() -> str:
    """All of stdin, where secrets travel (argv shows in ps and shell history)."""
    # sys.stdin, not click.get_text_stream: deprecated in Click 8.5, gone in 9.
    return sys.stdin.read()


def read_json_stdin(what: str) -> Any:
    """Parse a JSON document from stdin (secrets never travel in argv)."""
    raw = read_stdin()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        # The position only: the text itself may be a secret.
        raise click.UsageError(f"{what} on stdin is not valid JSON "
                               f"(line {exc.lineno}, column {exc.colno})") from None


class HubGroup(click.Group):
    """Maps hub errors to exit statuses and one-line messages."""

    def invoke(self, click_ctx: click.Context) -> Any:
        try:
            return super().invoke(click_ctx)
        except ConfigError as exc:
            _fail(click_ctx, exc, status=2)
        except HubError as exc:
            _fail(click_ctx, exc, status=1)
        except (sa_exc.OperationalError, psycopg.OperationalError) as exc:
            # Unreachable server, missing database, refused login: libpq's own first
            # line says which (it names host, port and database, never the password).
            cause = exc.orig if isinstance(exc, sa_exc.OperationalError) else exc
            _fail(click_ctx, ServiceUnavailable(f"PostgreSQL: {_first_line(cause)}"), status=1)
        except redis.ConnectionError as exc:
            _fail(click_ctx, ServiceUnavailable(f"Redis: {_first_line(exc)}"), status=1)


def _first_line(exc: BaseException | None) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _fail(click_ctx: click.Context, exc: HubError, *, status: int) -> None:
    obj = click_ctx.find_object(CliContext)
    if obj is not None and obj.json:
        click.echo(json.dumps(exc.envelope(), indent=2))
    else:
        click.echo(f"hub: error: {exc.message}", err=True)
    sys.exit(status)


@click.group(cls=HubGroup)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def cli(click_ctx: click.Context, as_json: bool) -> None:
    """Operate the integration hub."""
    obj = click_ctx.ensure_object(CliContext)
    obj.json = obj.json or as_json
    click_ctx.call_on_close(obj.close)


def main(dispatcher_factory: DispatcherFactory | None = None,
         args: Sequence[str] | None = None) -> None:
    """Run the CLI; ``dispatcher_factory`` is how this process enqueues tasks."""
    from hub.cli import commands  # noqa: F401 - registers every command group

    cli.main(args=args, obj=CliContext(dispatcher_factory=dispatcher_factory),
             prog_name="hub")
