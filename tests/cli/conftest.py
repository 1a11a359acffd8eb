from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import CliContext, cli


class Hub:
    """Runs ``hub ...`` in-process, as a script would, and parses --json output."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env=None):
        return self.runner.invoke(cli, list(args), input=input, env=env, obj=CliContext(),
                                  catch_exceptions=False)

    def json(self, *args: str, input: str | None = None, env=None):
        result = self("--json", *args, input=input, env=env)
        return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def hub() -> Hub:
    return Hub()
