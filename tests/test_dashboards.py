"""deploy/grafana and deploy/prometheus (issue 13 item 20): every expression of the
dashboard and the alert rules reads only metrics and labels the hub really exports,
taken from the web app's and a worker's own registries (not from a list kept here),
is PromQL that promtool accepts, and each alert fires when it should
(tests/prometheus/hub-alerts.test.yml under ``promtool test rules``).

promtool comes with Debian's ``prometheus`` package (.ci/run installs it); the
promtool tests are skipped, saying so, only where it is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.ops import healthchecks, maintenance
from hub.platform import errors, metrics
from hub.platform.config import Settings
from hub.platform.services import Services
from tests import promql

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy/grafana/hub-dashboard.json"
ALERTS = ROOT / "deploy/prometheus/hub-alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERT_CASES = ROOT / "tests/prometheus/hub-alerts.test.yml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus; "
    ".ci/run installs it when the package mirror answers)")

#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
#: Grafana's variables, replaced by what they stand for when a panel runs.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m",
                     "$integration": ".*"}
#: The sample names each exposition TYPE stands for (text format 0.0.4: a counter's
#: TYPE line already ends in _total).
SAMPLES = {"counter": ("",), "gauge": ("",), "untyped": ("",),
           "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


# --- what the hub exports ------------------------------------------------------------------


@pytest.fixture(scope="module")
def expositions(settings: Settings, services: Services) -> Iterator[dict[str, str]]:
    """The /metrics text of the web app and of a worker, as their own code builds it,
    with one series in each state family (an integration checked, a maintenance run)."""
    from tasks import workermetrics
    from tests.calls.fake_provider import Reply, fake_provider
    from tests.webhooks_web.conftest import close_app
    from webhooks_web import create_app

    tenant = "t-dashboards"
    with fake_provider() as provider, services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="graphed", adapter="rest", base_url=provider.url,
            config={"health_path": "/status"}))
        session.commit()
        provider.script("/status", Reply(200, {"ok": True}))
        healthchecks.check_one(services, tenant, "graphed")
    maintenance.record_success(services, "hub.maintenance.enqueue_due")

    app = create_app(settings)
    try:
        web = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        close_app(app)
    metrics.own(*workermetrics.METRICS)  # as the worker's start-up does
    worker = generate_latest(workermetrics.registry(services)).decode()
    yield {"web": web, "worker": worker}


@pytest.fixture(scope="module")
def exported(expositions: dict[str, str]) -> dict[str, set[str]]:
    """Every sample name the hub exports -> its label names."""
    series: dict[str, set[str]] = defaultdict(set)
    declared = {f.name: f.labels for f in vars(metrics).values()
                if isinstance(f, metrics.Family)}
    for text in expositions.values():
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
            for suffix in SAMPLES[kind]:
                # A family without series yet shows no labels: its declaration has them.
                series[name + suffix] |= set(declared.get(name, ()))
            if kind == "histogram":
                series[name + "_bucket"].add("le")
        for line in text.splitlines():
            if line and not line.startswith("#"):
                found = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ", line)
                assert found, line
                series[found.group(1)] |= set(re.findall(r'(\w+)="', found.group(2) or ""))
    return dict(series)


# --- what the dashboard and the rules read ---------------------------------------------


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]]


def _runnable(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def _all_expressions() -> list[str]:
    return [_runnable(e) for e in _dashboard_expressions()] + [
        rule["expr"] for rule in _alert_rules()]


def test_the_dashboard_loads_and_covers_what_seed_001_asks_for():
    dashboard = _dashboard()
    panels = _panels()
    expressions = " ".join(_dashboard_expressions())

    assert dashboard["uid"] == "integration-hub"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
               for p in panels)
    # Ingest rate and latency, queue depth, calls by outcome, cache hit ratio, breaker
    # state, DLQ size, delivery success; cost, integration health, webhook events by
    # status, and beat's pulse.
    for metric in ("hub_webhooks_received_total", "hub_webhook_ingest_seconds_bucket",
                   "hub_queue_messages", "hub_calls_total", "hub_cache_lookups_total",
                   "hub_breaker_state", "hub_dead_letters", "hub_deliveries_total",
                   "hub_call_cost_total", "hub_integration_health", "hub_webhook_events",
                   "hub_maintenance_last_success_timestamp_seconds"):
        assert metric in expressions, metric


def test_every_expression_reads_metrics_and_labels_the_hub_exports(exported):
    problems = []
    for expr in _all_expressions():
        found = promql.reads(expr)
        assert found.selectors, expr
        labels_read = set(TARGET_LABELS)
        for selector in found.selectors:
            if selector.metric not in exported:
                problems.append(f"{selector.metric}: not exported ({expr})")
                continue
            labels_read |= exported[selector.metric]
            for label, _op, _value in selector.matchers:
                if label not in exported[selector.metric] | TARGET_LABELS:
                    problems.append(f"{selector.metric} has no label {label} ({expr})")
        problems += [f"grouping by {label}, which none of its metrics has ({expr})"
                     for label in found.grouping - labels_read]
    assert not problems, "\n".join(problems)


def test_template_variables_read_exported_labels(exported):
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
        assert found, variable
        assert found.group(2) in exported[found.group(1)]


def test_label_values_named_in_expressions_exist():
    """Matchers on a known set of values name members of it: task names beat
    schedules, the hub's queues, cache results."""
    import celeryconfig
    from hub.ops import queues

    known = {"task": {entry["task"] for entry in celeryconfig.beat_schedule.values()},
             "queue": set(queues.broker_queues(celeryconfig.settings)),
             "result": {"hit", "miss"}}
    for expr in _all_expressions():
        for selector in promql.reads(expr).selectors:
            for label, op, value in selector.matchers:
                if label in known and op in ("=", "!="):
                    assert value in known[label], (label, value, expr)


def test_the_5xx_outcomes_are_the_error_codes_answered_with_5xx():
    def every(cls: type[errors.HubError]) -> Iterator[type[errors.HubError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from every(sub)

    # "unavailable": the intake's outcome for an exception that is no HubError (a 500).
    fivexx = {c.code.lower() for c in every(errors.HubError) if c.http_status >= 500}
    fivexx.add("unavailable")
    alternatives = set()
    for expr in _all_expressions():
        for selector in promql.reads(expr).selectors:
            alternatives |= {value for label, op, value in selector.matchers
                             if (selector.metric, label, op) == (
                                 "hub_webhooks_received_total", "outcome", "=~")}
    assert alternatives, "the alert and the panel select the 5xx outcomes"
    for alternative in alternatives:
        assert set(alternative.split("|")) == fivexx


def test_every_alert_has_its_promtool_case():
    cases = yaml.safe_load(ALERT_CASES.read_text())
    tested = {check["alertname"] for case in cases["tests"]
              for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert {rule["alert"] for rule in _alert_rules()} == tested


# --- promtool ------------------------------------------------------------------------------


def _promtool(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_promtool
def test_the_rules_and_the_prometheus_config_pass_promtool():
    _promtool("check", "rules", str(ALERTS))
    _promtool("check", "config", str(PROMETHEUS_CONFIG))


@needs_promtool
def test_each_alert_fires_when_it_should_and_not_before():
    _promtool("test", "rules", ALERT_CASES.name, cwd=ALERT_CASES.parent)


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses rule files, not bare queries: each query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query:{n}", "expr": _runnable(expr)}
        for n, expr in enumerate(_dashboard_expressions())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(rules['groups'][0]['rules'])} rules found" in _promtool(
        "check", "rules", str(path))


@needs_promtool
def test_the_expositions_pass_promtool_lint(expositions):
    for text in expositions.values():
        _promtool("check", "metrics", stdin=text)
