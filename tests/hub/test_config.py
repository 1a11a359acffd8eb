from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from hub.platform.config import (
    DEFAULT_DATABASE_URL,
    load_settings,
    setting_fields,
    settings_table,
)
from hub.platform.errors import ConfigError


def test_defaults_point_at_local_postgres_and_redis():
    settings = load_settings({})

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.effective_broker_url == "redis://127.0.0.1:6379/0"
    assert settings.effective_result_backend == "db+" + DEFAULT_DATABASE_URL


def test_bare_postgresql_url_gets_the_psycopg3_driver():
    settings = load_settings({"HUB_DATABASE_URL": "postgresql://u@db:5432/hub"})

    assert settings.database_url == "postgresql+psycopg://u@db:5432/hub"


@pytest.mark.parametrize("name, value", [
    ("HUB_DATABASE_URL", "mysql://root@localhost/hub"),
    ("HUB_REDIS_URL", "http://localhost"),
    ("HUB_BROKER_URL", "kafka://localhost"),
    ("HUB_VISIBILITY_TIMEOUT", "an hour"),
    ("HUB_ALLOW_PRIVATE_NETWORKS", "perhaps"),
])
def test_malformed_setting_names_the_variable(name, value):
    with pytest.raises(ConfigError, match=f"^{name} is malformed"):
        load_settings({name: value})


def test_malformed_key_error_does_not_echo_the_key():
    almost_a_key = Fernet.generate_key().decode()[:-4] + "!!!!"

    with pytest.raises(ConfigError) as info:
        load_settings({"HUB_ENCRYPTION_KEYS": almost_a_key})

    assert "HUB_ENCRYPTION_KEYS" in str(info.value)
    assert almost_a_key not in str(info.value)


def test_missing_keys_are_refused_when_needed():
    with pytest.raises(ConfigError, match="HUB_ENCRYPTION_KEYS is not set"):
        load_settings({}).require_encryption_keys()


def test_countdown_reaching_the_visibility_timeout_is_refused():
    with pytest.raises(ConfigError, match="HUB_MAX_COUNTDOWN"):
        load_settings({"HUB_MAX_COUNTDOWN": "3600", "HUB_VISIBILITY_TIMEOUT": "3600"})


def test_a_countdown_plus_a_run_must_fit_in_the_visibility_timeout():
    # A message waits its countdown inside the worker, then runs (acks_late): held
    # unacknowledged for both, so both must end before a Redis broker gives it out again.
    defaults = load_settings({})
    assert defaults.max_countdown + defaults.task_time_limit < defaults.visibility_timeout
    assert defaults.visibility_timeout <= 5 * 60  # a killed worker's task is back in minutes
    with pytest.raises(ConfigError, match="HUB_TASK_TIME_LIMIT"):
        load_settings({"HUB_TASK_TIME_LIMIT": "250", "HUB_TASK_SOFT_TIME_LIMIT": "200"})


def test_rabbitmq_broker_has_no_visibility_timeout_to_respect():
    settings = load_settings({"HUB_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                              "HUB_TASK_TIME_LIMIT": "900", "HUB_TASK_SOFT_TIME_LIMIT": "800"})

    assert settings.broker_is_amqp
    assert not load_settings({}).broker_is_amqp


def test_beat_lock_timeout_keeps_failover_under_a_minute():
    assert load_settings({}).beat_lock_timeout < 60
    with pytest.raises(ConfigError, match="HUB_BEAT_LOCK_TIMEOUT"):
        load_settings({"HUB_BEAT_LOCK_TIMEOUT": "6"})


def test_readme_settings_table_matches_the_code():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as file:
        readme = file.read()

    missing = [f.metadata["env"] for f in setting_fields() if f.metadata["env"] not in readme]
    assert missing == []
    # Regenerate with `python -m hub.platform.config` when this fails.
    assert settings_table() in readme


def test_worker_start_up_with_a_bad_setting_prints_one_line():
    env = dict(os.environ, HUB_REDIS_URL="localhost:6379")

    proc = subprocess.run([sys.executable, "-c", "import tasks"], env=env, check=False,
                          capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        ("hub: configuration error: HUB_REDIS_URL is malformed: "
         "expected a redis://, rediss:// or unix:// URL")]
