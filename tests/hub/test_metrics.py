"""hub.platform.metrics: a process exports the families it owns or measures, nothing
else; its value storage is chosen once, at its first family, and /metrics follows it.

Each case runs in a fresh interpreter: the choice is per process, and this one's is
made already.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Runs in the child: the exposition text's TYPE lines and samples, as JSON.
_REPORT = """
import json, re
from hub.platform import metrics
text = metrics.render()[0].decode()
print(json.dumps({"types": re.findall(r"^# TYPE (\\S+) ", text, re.M),
                  "samples": [l for l in text.splitlines() if l and not l.startswith("#")]}))
"""


def _run(script: str, **env: str) -> dict[str, list[str]]:
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script) + _REPORT],
                          cwd=ROOT, env={**environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return report


def _hub(names: list[str]) -> set[str]:
    """The hub's families (without the ``_created`` gauges in-memory mode adds)."""
    return {n for n in names if n.startswith("hub_") and not n.endswith("_created")}


WEB = {"hub_webhooks_received_total", "hub_webhook_ingest_seconds",
       "hub_webhook_ingest_batch_events", "hub_webhook_enqueue_failures_total",
       "hub_events_dropped_total"}


def test_an_importing_process_exports_no_family_until_it_owns_or_measures_one():
    # Every module of the hub, the web app and the worker's tasks, imported.
    report = _run("""
        import importlib, pkgutil
        import hub, webhooks_web
        from tasks.app import TASK_MODULES
        for package in (hub, webhooks_web):
            for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(found.name)
        for name in TASK_MODULES:
            importlib.import_module(name)
    """)
    assert _hub(report["types"]) == set()


def test_the_web_app_exports_its_own_families_and_what_it_measures():
    report = _run("""
        from hub.platform import metrics
        from webhooks_web.app import METRICS
        metrics.own(*METRICS)
    """)
    assert _hub(report["types"]) == WEB
    assert "hub_webhook_ingest_seconds_count 0.0" in report["samples"]

    measured = _run("""
        from hub.platform import metrics
        from webhooks_web.app import METRICS
        metrics.own(*METRICS)
        metrics.record_delivery("succeeded", 0.2)
    """)
    assert _hub(measured["types"]) == WEB | {"hub_deliveries_total",
                                             "hub_delivery_duration_seconds"}


def test_a_worker_sharing_a_sample_directory_shows_its_families_from_the_start(tmp_path):
    report = _run("""
        from hub.platform import metrics
        from tasks.workermetrics import METRICS
        metrics.own(*METRICS)
        metrics.record_call("crm", "get", "success", 0.05)
    """, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    from tasks.workermetrics import METRICS

    assert _hub(report["types"]) == {family.name for family in METRICS}
    assert not _hub(report["types"]) & (WEB - {"hub_events_dropped_total"})
    assert "hub_delivery_duration_seconds_count 0.0" in report["samples"]
    assert ('hub_calls_total{integration="crm",operation="get",outcome="success"} 1.0'
            in report["samples"])
    assert list(tmp_path.iterdir()), "samples go to the directory's files"


def test_a_directory_named_after_the_first_family_changes_nothing(tmp_path):
    # What made /metrics of the webhook tests empty under `pytest -n 2`: a test ran
    # gunicorn.conf.py in-process, which set PROMETHEUS_MULTIPROC_DIR, and /metrics then
    # summed the files of that (empty) directory instead of this process's values.
    report = _run(f"""
        import os
        from hub.platform import metrics
        from webhooks_web.app import METRICS
        metrics.own(*METRICS)
        metrics.record_webhook_received("stripe", "accepted", 0.01)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
    """)
    assert ('hub_webhooks_received_total{outcome="accepted",source="stripe"} 1.0'
            in report["samples"])
    assert not list(tmp_path.iterdir())


def test_every_family_declared_is_owned_by_the_web_app_or_the_worker():
    from prometheus_client.metrics import MetricWrapperBase

    from hub.platform import metrics
    from tasks.workermetrics import METRICS as WORKER
    from webhooks_web.app import METRICS as WEB_APP

    # Declared as Family (made on first use), never as a metric object made at import.
    assert not [n for n, v in vars(metrics).items() if isinstance(v, MetricWrapperBase)]
    declared = {value.name for value in vars(metrics).values()
                if isinstance(value, metrics.Family)}
    assert declared == {f.name for f in (*WEB_APP, *WORKER)}
    assert {f.name for f in WEB_APP} == WEB
    assert all(re.fullmatch(r"hub_[a-z_]+", name) for name in declared)
