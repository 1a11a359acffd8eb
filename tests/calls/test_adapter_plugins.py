"""Adapters as plugins: a package of its own, found through the ``hub.adapters`` entry
point group by importlib.metadata, callable by name through a real worker process."""

from __future__ import annotations

import logging
import textwrap
import uuid
from pathlib import Path

import pytest

from hub import adapters
from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.platform.errors import ConfigError
from tests.calls.processes import worker_process

PLUGIN_MODULE = '''
"""A third-party adapter, packaged on its own."""
from hub.adapters.base import Adapter, Operation


class ShoutAdapter(Adapter):
    name = "acme_shout"
    version = "2.1"
    operations = (
        Operation("shout", method="POST", path="/v1/shout",
                  params_schema={"type": "object", "required": ["text"],
                                 "properties": {"text": {"type": "string"}},
                                 "additionalProperties": False},
                  request_map="{message: text}", response_map="{echoed: json.message}"),
    )
'''


def make_plugin(site: Path, entry_points: str, module: str = PLUGIN_MODULE,
                package_name: str = "acme_hub_shout") -> Path:
    """What ``pip install`` leaves in site-packages: the package and its dist-info
    (METADATA, entry_points.txt, RECORD), so importlib.metadata finds a real entry point.
    A package name is imported once per process: each test gives its own."""
    package = site / package_name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(module))
    dist_info = site / f"{package_name}-0.3.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package_name.replace('_', '-')}\nVersion: 0.3.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (dist_info / "RECORD").write_text("")
    return site


ENTRY_POINTS = """
    [hub.adapters]
    acme_shout = acme_hub_shout:ShoutAdapter
"""


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """The plugin installed in this process (a directory on sys.path, as site-packages is)."""
    site = make_plugin(tmp_path / "site", ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    adapters.reload()
    yield site
    monkeypatch.undo()
    adapters.reload()


def test_a_plugin_is_found_through_its_entry_point(plugin_site):
    adapter = adapters.get("acme_shout")

    assert adapter.version == "2.1" and [op.name for op in adapter.operations] == ["shout"]
    assert adapters.source_of("acme_shout").startswith("plugin acme-hub-shout")
    assert adapters.source_of("rest") == "builtin"
    assert "hub.acme_shout.shout" in adapters.task_names()


@pytest.mark.slow
def test_a_plugin_operation_runs_by_name_in_a_real_worker(plugin_site, client_app, settings,
                                                          sessions, vault, tenant, provider):
    with sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="shouty", adapter="acme_shout", base_url=provider.url,
            auth_type="api_key"))
        integrations.set_credentials(session, vault, tenant, "shouty",
                                     {"api_key": provider.api_key})
    queue = settings.queue(f"plugin-{uuid.uuid4().hex[:6]}")
    # The worker process has the plugin on its path, as it would after `pip install`.
    with worker_process(client_app, [queue], app="tasks",
                        env={"PYTHONPATH": str(plugin_site)}):
        by_call = client_app.send_task("hub.call", queue=queue, kwargs={
            "tenant": tenant, "integration": "shouty", "operation": "shout",
            "params": {"text": "hello"}})
        by_name = client_app.send_task("hub.acme_shout.shout", queue=queue, kwargs={
            "tenant": tenant, "integration": "shouty", "text": "again"})
        first, second = by_call.get(timeout=60), by_name.get(timeout=60)

    assert first["ok"] and first["data"] == {"echoed": "hello"}
    assert second["ok"] and second["data"] == {"echoed": "again"}
    assert provider.hits("/v1/shout") == 2


def test_a_broken_plugin_is_left_out_and_reported(tmp_path, monkeypatch, caplog):
    site = make_plugin(tmp_path / "site", """
        [hub.adapters]
        acme_broken = acme_hub_broken.missing:Nothing
    """, package_name="acme_hub_broken")
    monkeypatch.syspath_prepend(str(site))
    with caplog.at_level(logging.ERROR, logger="hub.adapters"):
        found = adapters.reload()
    try:
        assert "rest" in found and "acme_broken" not in found
        [problem] = adapters.plugin_problems()
        assert problem.entry_point == "acme_broken"
        assert problem.distribution == "acme-hub-broken"
        assert "ModuleNotFoundError" in problem.error
        assert "acme_broken" in caplog.text
    finally:
        monkeypatch.undo()
        adapters.reload()


def test_two_adapters_with_one_name_stop_the_process(tmp_path, monkeypatch):
    site = make_plugin(tmp_path / "site", """
        [hub.adapters]
        rest = acme_hub_rest:ShoutAdapter
    """, module=PLUGIN_MODULE.replace('"acme_shout"', '"rest"'), package_name="acme_hub_rest")
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.raises(ConfigError, match="two adapters are named 'rest'"):
            adapters.reload()
    finally:
        monkeypatch.undo()
        adapters.reload()


def test_the_cli_lists_plugins_and_registers_integrations_for_them(plugin_site, tenant):
    from click.testing import CliRunner

    from hub.cli import commands  # noqa: F401
    from hub.cli.main import CliContext, cli

    runner = CliRunner()
    listed = runner.invoke(cli, ["adapters", "list"], obj=CliContext())
    added = runner.invoke(cli, ["integrations", "add", "--tenant", tenant, "--name", "s",
                                "--adapter", "acme_shout", "--base-url", "http://127.0.0.1:9"],
                          obj=CliContext())

    assert listed.exit_code == 0
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("acme_shout")]
    assert "2.1" in line and "plugin acme-hub-shout" in line and "shout" in line
    assert added.exit_code == 0, added.output
