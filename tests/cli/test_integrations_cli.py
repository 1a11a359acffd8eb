from __future__ import annotations

import json

import pytest

from hub.calls import integrations
from hub.cli.integrations import set_
from hub.platform.vault import Vault


def _add(hub, tenant, name="maps", *extra):
    return hub.json("integrations", "add", "--tenant", tenant, "--name", name, "--adapter",
                    "rest", "--base-url", "https://api.example.com", "--auth-type", "api_key",
                    *extra)


def test_add_list_show_disable_enable(hub, tenant):
    status, added = _add(hub, tenant, "maps", "--per-minute", "60", "--config", '{"a": 1}')
    assert status == 0 and added["rate_limits"]["per_minute"] == 60 and added["config"] == {"a": 1}

    status, listed = hub.json("integrations", "list", "--tenant", tenant)
    assert [i["name"] for i in listed] == ["maps"]

    assert hub.json("integrations", "disable", "--tenant", tenant, "--name", "maps")[1][
        "status"] == "disabled"
    assert hub.json("integrations", "enable", "--tenant", tenant, "--name", "maps")[1][
        "status"] == "active"
    table = hub("integrations", "list", "--tenant", tenant).stdout
    assert table.splitlines()[0].split()[:3] == ["TENANT", "NAME", "ADAPTER"]


def test_refused_request_exits_1_with_envelope(hub, tenant):
    _add(hub, tenant)

    status, body = _add(hub, tenant)

    assert status == 1 and body["error"]["code"] == "CONFLICT"
    status, body = hub.json("integrations", "show", "--tenant", "nobody", "--name", "maps")
    assert status == 1 and body["error"]["code"] == "NOT_FOUND"


def test_bad_usage_exits_2(hub, tenant):
    result = hub("integrations", "add", "--tenant", tenant, "--name", "x", "--adapter", "rest",
                 "--base-url", "https://a.example", "--config", "[1, 2]")

    assert result.exit_code == 2 and "must be a JSON object" in result.stderr


def test_credentials_come_from_stdin_and_are_stored_encrypted(hub, tenant, sessions, vault):
    _add(hub, tenant)

    status, body = hub.json("credentials", "set", "--tenant", tenant, "--integration", "maps",
                            input='{"api_key": "sk_live_cli"}')

    assert status == 0 and body["stored_keys"] == ["api_key"]
    assert "sk_live_cli" not in hub("integrations", "show", "--tenant", tenant,
                                    "--name", "maps").stdout
    with sessions() as session:
        row = integrations.get(session, tenant, "maps")
        assert "sk_live_cli" not in row.credentials
        assert integrations.credentials_of(vault, row).reveal() == {"api_key": "sk_live_cli"}


def test_credentials_have_no_command_line_option_for_the_secret():
    assert {p.name for p in set_.params} == {"tenant", "integration", "as_json"}


def test_malformed_credentials_are_not_echoed(hub, tenant):
    _add(hub, tenant)

    result = hub("credentials", "set", "--tenant", tenant, "--integration", "maps",
                 input='{"api_key": sk_not_quoted}')

    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    assert "sk_not_quoted" not in result.stderr + result.stdout


def test_keys_generate_then_rotate(hub, tenant, sessions, settings):
    old_key = settings.encryption_keys[0]
    _add(hub, tenant)
    hub("credentials", "set", "--tenant", tenant, "--integration", "maps",
        input='{"api_key": "sk_rot"}')
    _status, generated = hub.json("keys", "generate")
    new_key = generated["key"]

    result = hub("--json", "keys", "rotate", env={"HUB_ENCRYPTION_KEYS": f"{new_key},{old_key}"})

    assert '"integrations"' in result.stdout
    with sessions() as session:
        row = integrations.get(session, tenant, "maps")
        assert integrations.credentials_of(Vault([new_key]), row).reveal() == {"api_key": "sk_rot"}
    # Put every row of the shared test database back under the session's key.
    assert hub("keys", "rotate", env={"HUB_ENCRYPTION_KEYS": f"{old_key},{new_key}"}
               ).exit_code in (0, 1)


def test_missing_key_configuration_exits_2(hub, tenant):
    _add(hub, tenant)

    result = hub("credentials", "set", "--tenant", tenant, "--integration", "maps",
                 input='{"k": "v"}', env={"HUB_ENCRYPTION_KEYS": ""})

    assert result.exit_code == 2 and "HUB_ENCRYPTION_KEYS" in result.stderr


def test_an_unreachable_database_is_one_line_exit_1_without_the_password(hub, tenant,
                                                                        free_port_number):
    url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{free_port_number}/hub"

    result = hub("integrations", "list", "--tenant", tenant, env={"HUB_DATABASE_URL": url})

    assert result.exit_code == 1
    assert result.stderr.startswith("hub: error: PostgreSQL: ")
    assert "Connection refused" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "s3cret-pw" not in result.output + result.stderr


@pytest.fixture
def free_port_number() -> int:
    from hub.dev.embedded import free_port

    return free_port()


STRICT = {"HUB_ALLOW_PRIVATE_NETWORKS": "0"}


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/", "http://localhost/api",
                                      "http://[::1]:8080/", "https://127.9.9.9/"])
def test_add_refuses_a_base_url_calls_could_never_reach(hub, tenant, base_url):
    # Issue 9 item 14: accepted before, then every call was refused (SSRF guard).
    status, body = hub.json("integrations", "add", "--tenant", tenant, "--name", "inside",
                            "--adapter", "rest", "--base-url", base_url, env=STRICT)

    assert status == 1 and body["error"]["code"] == "VALIDATION_ERROR"
    assert "HUB_ALLOW_PRIVATE_NETWORKS" in body["error"]["message"]
    assert hub.json("integrations", "show", "--tenant", tenant, "--name", "inside")[0] == 1


def test_update_refuses_a_private_base_url_and_keeps_the_old_one(hub, tenant):
    # Allowed when private networks are (local development, these tests).
    status, _ = hub.json("integrations", "add", "--tenant", tenant, "--name", "maps",
                         "--adapter", "rest", "--base-url", "http://127.0.0.1:9/")
    assert status == 0

    status, body = hub.json("integrations", "update", "--tenant", tenant, "--name", "maps",
                            "--base-url", "http://127.0.0.2:9/", env=STRICT)

    assert status == 1 and body["error"]["code"] == "VALIDATION_ERROR"
    shown = hub.json("integrations", "show", "--tenant", tenant, "--name", "maps")[1]
    assert shown["base_url"] == "http://127.0.0.1:9/"
    status, body = hub.json("integrations", "update", "--tenant", tenant, "--name", "maps",
                            "--base-url", "http://127.0.0.2:9/")
    assert status == 0 and body["base_url"] == "http://127.0.0.2:9/"


def test_credentials_for_an_unknown_integration_say_so_before_reading_stdin(hub, tenant):
    status, body = hub.json("credentials", "set", "--tenant", tenant, "--integration", "nope",
                            input="")
    assert status == 1 and body["error"]["code"] == "NOT_FOUND"


def test_credentials_are_checked_against_the_auth_type(hub, tenant):
    hub.json("integrations", "add", "--tenant", tenant, "--integration", "crm", "--adapter",
             "rest", "--base-url", "https://api.example.com", "--auth-type", "bearer")
    status, body = hub.json("credentials", "set", "--tenant", tenant, "--integration", "crm",
                            input='{"tok": "sk_typo_secret"}')
    assert status == 1 and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["unknown"] == ["tok"]
    assert "sk_typo_secret" not in json.dumps(body)


def test_update_priority_and_fallback(hub, tenant):
    _add(hub, tenant, "backup")
    _add(hub, tenant, "maps")
    status, updated = hub.json("integrations", "update", "--tenant", tenant, "--integration",
                               "maps", "--priority", "3", "--fallback", "backup")
    assert status == 0 and updated["priority"] == 3 and updated["fallback_integration_id"]
    status, cleared = hub.json("integrations", "update", "--tenant", tenant, "--name", "maps",
                               "--no-fallback")
    assert status == 0 and cleared["fallback_integration_id"] is None
