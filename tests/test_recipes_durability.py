"""Every recipe runs Redis so that queued calls survive a restart, and keeps beat
supervised (issue 9, items 4 and 5; issue 13, item 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.dev import embedded
from hub.platform.persistence import REDIS_DURABLE_FLAGS

ROOT = Path(__file__).resolve().parents[1]


def _settings_given(text: str) -> dict[str, str]:
    """``--name value`` flags (argv lists, quoted or not) and ``name value`` config lines."""
    found = dict(re.findall(r'"--([a-z-]+)",\s*"([a-z]+)"', text))
    found.update(re.findall(r"^([a-z-]+) ([a-z]+)$", text, flags=re.MULTILINE))
    return found


@pytest.mark.parametrize("recipe", [
    "deploy/docker-compose.yml", "deploy/kubernetes/hub.yaml", "deploy/systemd/redis-hub.conf"])
def test_recipe_runs_redis_with_aof_and_noeviction(recipe):
    given = _settings_given((ROOT / recipe).read_text())

    assert {k: given.get(k) for k in REDIS_DURABLE_FLAGS} == REDIS_DURABLE_FLAGS


def test_compose_and_kubernetes_keep_the_aof_on_a_volume():
    compose = (ROOT / "deploy/docker-compose.yml").read_text()
    kube = (ROOT / "deploy/kubernetes/hub.yaml").read_text()

    assert "redisdata:/data" in compose
    assert "volumeClaimTemplates" in kube and "mountPath: /data" in kube


def test_hub_dev_embedded_redis_gets_the_same_flags():
    source = Path(embedded.__file__).read_text()

    assert "**REDIS_DURABLE_FLAGS" in source  # started and checked in test_devservices


def test_readme_and_procfile_say_how_redis_must_run():
    readme = (ROOT / "README.md").read_text()
    procfile = (ROOT / "Procfile").read_text()

    for text in (readme, procfile):
        assert "appendonly yes" in text and "appendfsync everysec" in text
        assert "noeviction" in text
    assert "### What survives which failure" in readme


def test_beat_is_restarted_without_a_start_limit_and_has_a_standby():
    unit = (ROOT / "deploy/systemd/hub-beat.service").read_text()
    compose = (ROOT / "deploy/docker-compose.yml").read_text()
    kube = (ROOT / "deploy/kubernetes/hub.yaml").read_text()

    assert "Restart=always" in unit and "StartLimitIntervalSec=0" in unit
    beat_service = compose[compose.index("  beat:"):compose.index("  flower:")]
    assert "restart: unless-stopped" in beat_service
    beat_deployment = kube[kube.index("name: hub-beat"):kube.index("name: hub-flower")]
    assert "replicas: 2" in beat_deployment
