"""The CLI's one set of conventions (README "Command line"), checked over every command
registered, so a command added later is held to them too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import click
import pytest

from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import cli
from hub.cli.timefilters import parse_when


def _commands(group: click.Group = cli, path: tuple[str, ...] = ("hub",)
              ) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_takes_json(path, command):
    assert "--json" in {opt for p in command.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_shows_no_rst_markup(path, command):
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        assert not re.search(r"``|:(func|class|meth|data|mod):`", text), f"{path}: {text}"


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_one_name_per_thing(path, command):
    """--integration for an integration (--name is its alias inside `hub integrations`),
    --id for an id, and --since/--until take ISO times and ages alike."""
    for param in command.params:
        opts = set(getattr(param, "opts", []))
        if "--name" in opts and path.startswith("hub integrations"):
            assert "--integration" in opts, path
        if opts & {"--since", "--until"}:
            assert param.callback is parse_when, path
        assert not any(o.endswith("-id") and o not in ("--id", "--task-id") for o in opts), \
            f"{path}: {opts} (use --id, or --subscription/--endpoint for a reference)"


def test_version(hub):
    result = hub("--version")
    assert result.exit_code == 0 and re.match(r"hub, version \d+\.\d+", result.stdout)


@pytest.mark.parametrize("args, message", [
    (["integrations", "add", "--tenant", "t"], "Missing option"),
    (["integrations", "list", "--bogus"], "No such option"),
    (["logs", "--since", "yesterday-ish"], "ISO 8601"),
    (["nosuchcommand"], "No such command"),
])
def test_usage_errors_with_json_print_the_envelope_on_stdout(hub, args, message):
    for argv in (["--json", *args], [*args, "--json"]):
        result = hub(*argv)
        assert result.exit_code == 2, argv
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "USAGE_ERROR" and message in error["message"], argv


def test_usage_errors_without_json_stay_text_on_stderr(hub):
    result = hub("integrations", "add", "--tenant", "t")
    assert result.exit_code == 2 and result.stdout == ""
    assert "Missing option" in result.stderr


def test_configuration_error_with_json_is_the_envelope(hub):
    result = hub("--json", "integrations", "list", env={"HUB_VISIBILITY_TIMEOUT": "soon"})
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "CONFIG_ERROR" and "HUB_VISIBILITY_TIMEOUT" in error["message"]


def test_health_is_one_line_per_dependency(hub, tenant):
    env = {"HUB_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none",
           "HUB_REDIS_URL": "redis://127.0.0.1:1/0", "HUB_BROKER_URL": "redis://127.0.0.1:1/0"}
    result = hub("health", env=env)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["postgres", "FAIL"], ["redis", "FAIL"], ["broker", "FAIL"]]
    status, report = hub.json("health", env=env)
    assert status == 1 and all("\n" not in c["detail"] for c in report["checks"].values())
