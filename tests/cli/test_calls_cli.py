"""``hub dlq``, ``hub logs`` and ``hub integrations test``."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from hub.calls.pipeline import CallRequest, execute_call
from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import CliContext, cli
from hub.platform import deadletters
from hub.platform.dispatch import REPLAY_HEADER, RecordingDispatcher
from hub.platform.scheduler import utcnow
from tests.calls.conftest import make_integration, provider  # noqa: F401 - fixtures
from tests.calls.fake_provider import Reply


def _run(*args: str, dispatcher=None):  # type: ignore[no-untyped-def]
    obj = CliContext(dispatcher_factory=(lambda: dispatcher) if dispatcher else None)
    return CliRunner().invoke(cli, list(args), obj=obj, catch_exceptions=False)


def _letters(sessions, tenant):  # type: ignore[no-untyped-def]
    with sessions() as s, s.begin():
        for n, code in enumerate(("UPSTREAM_ERROR", "UPSTREAM_ERROR", "TIMEOUT")):
            deadletters.record(s, origin="call", task_name="hub.call",
                               kwargs={"tenant": tenant, "integration": "crm", "operation": "post",
                                       "params": {"path": f"/v1/{n}"}},
                               tenant_id=tenant, integration="crm", error_code=code,
                               error="provider answered 500", attempts=5, task_id=f"t{n}")


def test_dlq_list_show_filters(sessions, tenant):
    _letters(sessions, tenant)
    result = _run("dlq", "list", "--tenant", tenant, "--code", "UPSTREAM_ERROR", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and {r["error_code"] for r in rows} == {"UPSTREAM_ERROR"}
    assert json.loads(_run("dlq", "list", "--tenant", tenant, "--since", "1h", "--json")
                      .stdout).__len__() == 3
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert json.loads(_run("dlq", "list", "--tenant", tenant, "--since", future, "--json")
                      .stdout) == []
    shown = json.loads(_run("dlq", "show", rows[0]["id"], "--json").stdout)
    assert shown["kwargs"]["operation"] == "post" and shown["task_name"] == "hub.call"
    assert _run("dlq", "show", rows[0]["id"], "--tenant", "someone-else").exit_code == 1
    table = _run("dlq", "list", "--tenant", tenant).stdout
    assert table.splitlines()[0].startswith("ID") and "TIMEOUT" in table
    assert _run("dlq", "list", "--since", "yesterday").exit_code == 2


def test_dlq_replay_dry_run_then_for_real_then_purge(sessions, settings, tenant):
    _letters(sessions, tenant)
    dispatcher = RecordingDispatcher()
    dry = _run("dlq", "replay", "--tenant", tenant, "--code", "UPSTREAM_ERROR", "--dry-run",
               "--json", dispatcher=dispatcher)
    assert json.loads(dry.stdout)["count"] == 2 and dispatcher.sent == []
    real = json.loads(_run("dlq", "replay", "--tenant", tenant, "--code", "UPSTREAM_ERROR",
                           "--rate", "100", "--json", dispatcher=dispatcher).stdout)
    assert real["count"] == 2
    assert [(n, q) for n, _, q in dispatcher.sent] == [("hub.call", settings.queue("replay"))] * 2
    assert {k["params"]["path"] for _, k, _ in dispatcher.sent} == {"/v1/0", "/v1/1"}
    assert all(letter["replay_task_id"] for letter in real["letters"])
    # Each replay says which letter it replays (issue 9 item 1: it waits like a retry).
    assert sorted(h[REPLAY_HEADER] for h in dispatcher.headers) == \
        sorted(letter["id"] for letter in real["letters"])
    again = json.loads(_run("dlq", "replay", "--tenant", tenant, "--json",
                            dispatcher=dispatcher).stdout)
    assert again["count"] == 1  # only the TIMEOUT one was never replayed
    assert _run("dlq", "purge").exit_code == 2
    purged = json.loads(_run("dlq", "purge", "--tenant", tenant, "--code", "TIMEOUT",
                             "--json").stdout)
    assert purged == {"dry_run": False, "purged": 1, "matched": 1}
    assert len(json.loads(_run("dlq", "list", "--tenant", tenant, "--json").stdout)) == 2


def test_logs_and_integrations_test(services, tenant, provider, make_integration):  # noqa: F811
    make_integration("crm")
    execute_call(services, CallRequest(tenant, "crm", "post", {"path": "/v1/a"}))
    rows = json.loads(_run("logs", "--tenant", tenant, "--integration", "crm", "--json").stdout)
    assert [(r["integration"], r["operation"], r["outcome"], r["status_code"])
            for r in rows] == [("crm", "post", "success", 200)]
    table = _run("logs", "--tenant", tenant).stdout.splitlines()
    assert table[0].split()[:4] == ["STARTED_AT", "TENANT", "INTEGRATION", "OPERATION"]
    assert " crm " in table[1]
    full = json.loads(_run("logs", "--tenant", tenant, "--full", "--json").stdout)
    assert full[0]["request_headers"]["X-Api-Key"] == "[REDACTED]"
    assert _run("logs", "--integration", "crm").exit_code == 2

    provider.script("/public/health", Reply(200, {"status": "ok"}))
    make_integration("pub", config={"health_path": "/public/health"})
    report = _run("integrations", "test", "--tenant", tenant, "--name", "pub", "--json")
    assert report.exit_code == 0 and json.loads(report.stdout)["ok"] is True
    provider.script("/", Reply(503))
    failing = _run("integrations", "test", "--tenant", tenant, "--name", "crm")
    assert failing.exit_code == 1 and "FAILED (HTTP 503" in failing.stdout
    assert _run("integrations", "test", "--tenant", tenant, "--name", "nope").exit_code == 1


def test_dlq_show_links_a_replay_that_failed_again_both_ways(sessions, tenant):
    dispatcher = RecordingDispatcher()
    _letters(sessions, tenant)
    [replayed] = json.loads(_run("dlq", "replay", "--tenant", tenant, "--code", "TIMEOUT",
                                 "--json", dispatcher=dispatcher).stdout)["letters"]
    with sessions() as s, s.begin():  # the replay's own attempts ran out in turn
        again = deadletters.record(s, origin="call", task_name="hub.call",
                                   kwargs=dispatcher.sent[0][1], tenant_id=tenant,
                                   integration="crm", error_code="TIMEOUT", error="timed out",
                                   attempts=5, task_id=replayed["replay_task_id"]).id

    first = json.loads(_run("dlq", "show", replayed["id"], "--json").stdout)
    second = json.loads(_run("dlq", "show", str(again), "--json").stdout)

    assert first["replay"]["outcome"] == "dead_lettered"
    assert first["replay"]["dead_letter_id"] == str(again)
    assert second["replay_of"] == replayed["id"] and second["replay"] is None
