"""``hub webhooks add|list|show|disable|enable|rotate-secret`` in-process, on the real database."""

from __future__ import annotations

import json

from hub.platform.models import WebhookEndpoint


def test_add_with_a_generated_secret_prints_it_once(hub, tenant, sessions, vault, settings):
    status, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "stripe",
                               "--scheme", "stripe", "--allow-ip", "10.0.0.0/8",
                               "--event-type", "invoice.*", "--rate-limit", "100")

    assert status == 0
    assert created["secret"].startswith("whsec_")
    assert created["url"] == f"{settings.public_url}/api/v1/webhooks/stripe/{created['token']}"
    with sessions() as session:
        row = session.get(WebhookEndpoint, created["id"])
    assert created["secret"] not in row.secret  # stored encrypted
    assert vault.decrypt(row.secret, owner="test") == [created["secret"]]
    assert (row.allowed_ips, row.event_types, row.rate_limit_per_minute) == (
        ["10.0.0.0/8"], ["invoice.*"], 100)

    status, shown = hub.json("webhooks", "show", "--tenant", tenant, "--id", created["id"])
    assert status == 0 and created["secret"] not in json.dumps(shown)


def test_add_reads_the_secret_from_stdin_and_keeps_generic_options(hub, tenant, sessions,
                                                                   vault):
    status, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "acme",
                               "--scheme", "hmac-sha256", "--secret-stdin", "--header",
                               "X-Acme-Sig", "--encoding", "base64", "--prefix", "sha256=",
                               input="acme-secret\n")

    assert status == 0 and "secret" not in created
    with sessions() as session:
        row = session.get(WebhookEndpoint, created["id"])
    assert vault.decrypt(row.secret, owner="test") == ["acme-secret"]
    assert row.config == {"header": "x-acme-sig", "encoding": "base64", "prefix": "sha256="}


def test_token_only_endpoint_has_no_secret(hub, tenant):
    status, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "ping",
                               "--scheme", "none")

    assert status == 0 and "secret" not in created


def test_list_disable_enable_are_tenant_scoped(hub, tenant):
    _, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "gh",
                          "--scheme", "github")

    status, disabled = hub.json("webhooks", "disable", "--tenant", tenant, "--id", created["id"])
    assert status == 0 and disabled["active"] is False
    _, listed = hub.json("webhooks", "list", "--tenant", tenant)
    assert [(e["id"], e["active"]) for e in listed] == [(created["id"], False)]
    _, enabled = hub.json("webhooks", "enable", "--tenant", tenant, "--id", created["id"])
    assert enabled["active"] is True

    assert hub.json("webhooks", "list", "--tenant", tenant + "-other")[1] == []
    status, refused = hub.json("webhooks", "show", "--tenant", tenant + "-other",
                               "--id", created["id"])
    assert status == 1 and refused["error"]["code"] == "NOT_FOUND"


def test_rotate_secret_keeps_the_previous_one_second(hub, tenant, sessions, vault):
    _, created = hub.json("webhooks", "add", "--tenant", tenant, "--source", "sh",
                          "--scheme", "shopify", "--secret-stdin", input="first\n")

    status, rotated = hub.json("webhooks", "rotate-secret", "--tenant", tenant,
                               "--id", created["id"])
    hub.json("webhooks", "rotate-secret", "--tenant", tenant, "--id", created["id"],
             "--secret-stdin", input="third\n")

    assert status == 0 and rotated["secret"]
    with sessions() as session:
        row = session.get(WebhookEndpoint, created["id"])
    assert vault.decrypt(row.secret, owner="test") == ["third", rotated["secret"]]


def test_bad_input_is_refused_with_a_message(hub, tenant):
    status, refused = hub.json("webhooks", "add", "--tenant", tenant, "--source", "Bad Source",
                               "--scheme", "github")
    assert status == 1 and refused["error"]["code"] == "VALIDATION_ERROR"

    status, refused = hub.json("webhooks", "add", "--tenant", tenant, "--source", "ok",
                               "--scheme", "github", "--allow-ip", "300.1.1.1/8")
    assert status == 1 and "allowed IP" in refused["error"]["message"]
