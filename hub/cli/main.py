"""The root ``hub`` group, shared options and output helpers.

The conventions every command follows (README "Command line" documents them):

- ``--json`` on every command (added by :class:`HubGroup` to whatever is
  registered, also accepted before the command name) prints one JSON document
  on stdout; a failure, usage and configuration errors included, is the envelope
  ``{"ok": false, "error": {"code", "message", "details"}}``.
- Exit statuses (DESIGN §8): 0 success, 1 a refused request (any HubError: not
  found, conflict, validation...), 2 bad usage or configuration.
- Objects are named by options: ``--tenant``, ``--integration`` (``--name`` in
  ``hub integrations``), ``--id`` for anything with an id; ``--since`` /
  ``--until`` take an ISO 8601 time or an age (hub.cli.timefilters); lists
  ordered by time are newest first.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
import redis
from sqlalchemy import exc as sa_exc

from hub.dev import running
from hub.platform.config import Settings, load_settings
from hub.platform.dispatch import Dispatcher
from hub.platform.errors import ConfigError, HubError, ServiceUnavailable
from hub.platform.services import Services

F = TypeVar("F", bound=Callable[..., Any])

#: Set by the process entry point (``celerydispatch.cli``): how the CLI enqueues tasks.
DispatcherFactory = Callable[[], Dispatcher]


@dataclass
class CliContext:
    dispatcher_factory: DispatcherFactory | None = None
    json: bool = False
    #: The state directory of `hub dev` (set by that group for its subcommands).
    dev_state_dir: Path | None = None
    _settings: Settings | None = None
    _services: Services | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            # In a checkout where `hub dev` runs, talk to its servers (README "hub dev").
            # Into os.environ: the dispatcher's celeryconfig reads the settings from there.
            os.environ.update(running.client_environment(os.environ))
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


JSON_HELP = "Print one JSON document on stdout (errors too)."


def _set_json(click_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        click_ctx.ensure_object(CliContext).json = True
    return value


# Eager, so that errors in the parameters processed after it already print JSON.
_JSON_FLAG: dict[str, Any] = {"is_flag": True, "expose_value": False, "is_eager": True,
                              "callback": _set_json, "help": JSON_HELP}


def json_param() -> click.Option:
    """A ``--json`` flag for a command built without :func:`json_option`."""
    return click.Option(["--json", "as_json"], **_JSON_FLAG)


def json_option(func: F) -> F:
    """Add ``--json`` to a command (:class:`HubGroup` also adds it to any command
    registered without it)."""
    return click.option("--json", "as_json", **_JSON_FLAG)(func)


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
    """Every ``hub`` group: adds ``--json`` to each command, maps hub errors to exit
    statuses and one-line messages (or the JSON envelope), usage errors included."""

    group_class = type  # subgroups are HubGroups too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "as_json" for p in cmd.params):
            cmd.params.append(json_param())
        super().add_command(cmd, name)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            _usage_failure(exc, extra.get("obj"), argv)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

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
            _fail(click_ctx, ServiceUnavailable(f"PostgreSQL: {first_line(cause)}"), status=1)
        except redis.ConnectionError as exc:
            _fail(click_ctx, ServiceUnavailable(f"Redis: {first_line(exc)}"), status=1)


def _usage_failure(exc: click.ClickException, obj: Any, argv: list[str]) -> None:
    """Bad usage: click's message on stderr, or with ``--json`` the envelope on stdout.

    ``--json`` is looked for in ``argv`` too: an unknown option stops the parser
    before any flag is processed.
    """
    given = argv[:argv.index("--")] if "--" in argv else argv
    if (isinstance(obj, CliContext) and obj.json) or "--json" in given:
        details: dict[str, Any] = {}
        click_ctx = getattr(exc, "ctx", None)
        if click_ctx is not None:
            details["usage"] = click_ctx.get_usage()
        envelope = {"ok": False, "error": {"code": "USAGE_ERROR",
                                           "message": exc.format_message(),
                                           "details": details}}
        click.echo(json.dumps(envelope, indent=2))
    else:
        exc.show()
    sys.exit(exc.exit_code)


def first_line(exc: BaseException | None) -> str:
    """The first line of an exception's text (drivers write several), or its type."""
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
@json_option
@click.version_option(package_name="integration-hub", prog_name="hub")
@click.pass_context
def cli(click_ctx: click.Context) -> None:
    """Operate the integration hub.

    Every command takes --json (one JSON document on stdout, errors included)
    and exits 0 on success, 1 on a refused request, 2 on bad usage or
    configuration.
    """
    obj = click_ctx.ensure_object(CliContext)
    click_ctx.call_on_close(obj.close)


def main(dispatcher_factory: DispatcherFactory | None = None,
         args: Sequence[str] | None = None) -> None:
    """Run the CLI; ``dispatcher_factory`` is how this process enqueues tasks."""
    from hub.cli import commands  # noqa: F401 - registers every command group

    cli.main(args=args, obj=CliContext(dispatcher_factory=dispatcher_factory),
             prog_name="hub")
