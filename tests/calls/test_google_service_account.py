"""auth_type google_service_account: the key file as the credential, an RS256 assertion
verified by the fake token endpoint with the account's public key, one shared token."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import requests

from hub.calls import integrations
from hub.calls.auth import strategy_for
from hub.calls.integrations import IntegrationSpec, credentials_of
from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.platform.errors import AuthError, ValidationError
from tests.calls.fake_google import (
    SHEETS_SCOPE,
    service_account_key,
)
from tests.cli.conftest import Hub


def _register(services: Any, tenant: str, base_url: str, config: dict[str, Any],
              key_file: dict[str, Any] | None = None, name: str = "sheets") -> Any:
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=name, adapter="rest", base_url=base_url,
            auth_type="google_service_account", config={"auth": config}))
        if key_file is not None:
            integrations.set_credentials(session, services.vault, tenant, name, key_file)
    with services.sessions() as session:
        row = integrations.get(session, tenant, name)
        session.expunge(row)
        return row


def _apply(services: Any, row: Any) -> requests.PreparedRequest:
    request = requests.Request("GET", row.base_url + "/v4/x").prepare()
    strategy_for(services, row, credentials_of(services.vault, row)).apply(request)
    return request


def test_the_assertion_is_verified_and_exchanged_for_one_shared_token(services, tenant, google):
    key_file, public_key = service_account_key()
    google.trust(key_file, public_key)
    row = _register(services, tenant, google.url,
                    {"scopes": [SHEETS_SCOPE], "token_url": google.token_url}, key_file)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(
        _apply(services, row).headers["Authorization"])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(tokens) == 8 and len(set(tokens)) == 1 and tokens[0].startswith("Bearer ya29.")
    assert google.hits("/token") == 1  # single-flight across the eight threads
    [claims] = google.assertions
    assert claims["iss"] == key_file["client_email"] and claims["scope"] == SHEETS_SCOPE
    assert claims["aud"] == google.token_url and claims["exp"] - claims["iat"] == 3600
    form = google.server.seen[0].form
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_invalidate_signs_a_new_assertion(services, tenant, google):
    key_file, public_key = service_account_key()
    google.trust(key_file, public_key)
    row = _register(services, tenant, google.url,
                    {"scopes": SHEETS_SCOPE, "token_url": google.token_url}, key_file)
    strategy = strategy_for(services, row, credentials_of(services.vault, row))
    first = requests.Request("GET", google.url).prepare()
    strategy.apply(first)
    strategy.invalidate()
    second = requests.Request("GET", google.url).prepare()
    strategy.apply(second)
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert google.hits("/token") == 2


def test_a_key_google_does_not_know_is_an_auth_error_without_key_material(services, tenant,
                                                                           google):
    trusted, public_key = service_account_key()
    google.trust(trusted, public_key)
    impostor, _ = service_account_key(email=trusted["client_email"])  # same account, other key
    row = _register(services, tenant, google.url,
                    {"scopes": [SHEETS_SCOPE], "token_url": google.token_url}, impostor)
    with pytest.raises(AuthError) as caught:
        _apply(services, row)
    assert "invalid_grant" in caught.value.message
    text = json.dumps(caught.value.envelope())
    assert "PRIVATE KEY" not in text and impostor["private_key_id"] not in text


def test_scopes_are_required(services, tenant, google):
    key_file, _ = service_account_key()
    row = _register(services, tenant, google.url, {"token_url": google.token_url}, key_file)
    with pytest.raises(AuthError, match="scopes"):
        _apply(services, row)


@pytest.mark.parametrize(("change", "complaint"), [
    ({"type": "authorized_user"}, '"type": "service_account"'),
    ({"private_key": None}, "no private_key"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"},
     "not an unencrypted PEM private key"),
    ({"token_uri": "file:///etc/passwd"}, "token_uri"),
])
def test_a_wrong_key_file_is_refused_when_stored(services, tenant, change, complaint):
    key_file, _ = service_account_key()
    bad = {**key_file, **change}
    with pytest.raises(ValidationError) as caught:
        _register(services, tenant, "https://sheets.googleapis.com", {"scopes": "x"}, bad)
    assert complaint in caught.value.message
    assert "c2VjcmV0" not in caught.value.message and "PRIVATE KEY" not in caught.value.message


def test_hub_credentials_set_reads_the_key_file_from_stdin(services, tenant, sessions, vault):
    _register(services, tenant, "https://sheets.googleapis.com", {})
    key_file, _ = service_account_key()
    hub = Hub()
    result = hub("--json", "credentials", "set", "--tenant", tenant, "--integration", "sheets",
                 input=json.dumps(key_file))
    assert result.exit_code == 0, result.output
    assert key_file["private_key"] not in result.output
    with sessions() as session:
        row = integrations.get(session, tenant, "sheets")
        assert "PRIVATE KEY" not in row.credentials
        assert integrations.credentials_of(vault, row).reveal() == key_file
    refused = hub("credentials", "set", "--tenant", tenant, "--integration", "sheets",
                  input=json.dumps({**key_file, "type": "user"}))
    assert refused.exit_code == 1 and "service_account" in refused.output
    assert "PRIVATE KEY" not in refused.output
