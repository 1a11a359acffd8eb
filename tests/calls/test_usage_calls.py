"""Usage and cost of real calls through a worker: ``hub usage`` and hub_call_cost_total."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from click.testing import CliRunner

from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import CliContext, cli
from hub.platform import metrics

TIMEOUT = 30


def _usage(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["--json", "usage", *args], obj=CliContext(),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _cost_metric(tenant: str, integration: str) -> float:
    return metrics.CALL_COST.child(tenant, integration)._value.get()


def test_hub_usage_adds_up_real_calls_and_their_cost(worker, client_app, tenant, provider,
                                                     make_integration):
    make_integration("crm", cost_per_call=Decimal("0.25"))
    before = _cost_metric(tenant, "crm")
    calls = [("get", {"path": "/v1/items"}), ("get", {"path": "/v1/items"}),  # 2nd: cached
             ("post", {"path": "/v1/items", "json": {"a": 1}})]
    for operation, params in calls:
        client_app.send_task("hub.call", kwargs={
            "tenant": tenant, "integration": "crm", "operation": operation,
            "params": params}).get(timeout=TIMEOUT)

    deadline = time.monotonic() + TIMEOUT
    rows = _usage("--tenant", tenant, "--by", "operation")
    while sum(r["calls"] for r in rows) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the roll-up waits for transactions still open in this database
        rows = _usage("--tenant", tenant, "--by", "operation")

    assert rows == [
        {"integration": "crm", "operation": "get", "calls": 2, "successes": 1, "failures": 0,
         "cached": 1, "rate_limited": 0, "cost": "0.250000"},
        {"integration": "crm", "operation": "post", "calls": 1, "successes": 1,
         "failures": 0, "cached": 0, "rate_limited": 0, "cost": "0.250000"},
    ]
    [total] = _usage("--tenant", tenant, "--integration", "crm", "--by", "integration",
                     "--since", "1d")
    assert (total["calls"], total["cost"]) == (3, "0.500000")
    assert _cost_metric(tenant, "crm") - before == 0.5
    table = CliRunner().invoke(cli, ["usage", "--tenant", tenant], obj=CliContext()).stdout
    assert table.splitlines()[0].split() == ["DAY", "CALLS", "SUCCESSES", "FAILURES", "CACHED",
                                             "RATE_LIMITED", "COST"]
