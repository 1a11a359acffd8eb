"""The OAuth2 authorization-code connect flow end to end: ``hub oauth connect``, the
provider's authorize page (a fake that checks PKCE), the web app's /oauth/callback,
and calls through a real worker that use and refresh the tokens."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import update

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.cli import commands  # noqa: F401 - registers the command groups
from hub.cli.main import CliContext, cli
from hub.platform.models import OAuthState
from tests.hub.fake_oauth import FakeAuthorizationServer, fake_authorization_server

NAME = "drive"


@pytest.fixture
def authz(web_settings):
    with fake_authorization_server(web_settings.public_url + "/oauth/callback") as fake:
        yield fake


@pytest.fixture
def connectable(sessions, vault, tenant, authz: FakeAuthorizationServer):
    with sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=NAME, adapter="rest", base_url=authz.url,
            auth_type="oauth2_authorization_code",
            config={"auth": {"authorize_url": authz.url + "/authorize", "scope": "files.read"}}))
        integrations.set_credentials(session, vault, tenant, NAME, {
            "client_id": authz.client_id, "client_secret": authz.client_secret})
    return NAME


def _hub(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["--json", *args], obj=CliContext(),
                                catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def _connect(tenant: str) -> str:
    status, started = _hub("oauth", "connect", "--tenant", tenant, "--integration", NAME)
    assert status == 0, started
    return started["authorize_url"]


def _browser(authorize_url: str) -> str:
    """What the person's browser does at the provider: returns the callback path+query."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    return f"{location.path}?{location.query}"


def _row(sessions, tenant):
    with sessions() as session:
        return integrations.get(session, tenant, NAME)


class _Events:
    def __init__(self, redis_client, tenant):
        self.tenant = tenant
        self.pubsub = redis_client.pubsub()
        self.pubsub.subscribe("integration.oauth.connected", "integration.oauth.failed")
        for _ in range(2):
            self.pubsub.get_message(timeout=1)

    def read(self, wait: float = 2.0) -> list[dict]:
        found, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                event = json.loads(message["data"])
                if event["tenant"] == self.tenant:
                    found.append(event)
            elif found:
                break
        self.pubsub.close()
        return found


def test_connect_exchanges_the_code_with_pkce_and_stores_the_tokens(
        client, sessions, vault, redis_client, tenant, authz, connectable):
    events = _Events(redis_client, tenant)
    authorize_url = _connect(tenant)
    query = parse_qs(urlsplit(authorize_url).query)
    assert {k: v[0] for k, v in query.items() if k not in ("state", "code_challenge")} == {
        "response_type": "code", "client_id": authz.client_id, "scope": "files.read",
        "redirect_uri": authz.redirect_uri, "code_challenge_method": "S256"}

    callback = _browser(authorize_url)
    page = client.get(callback, headers={"Accept": "text/html"})

    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html" and "<h1>Connected</h1>" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    row = _row(sessions, tenant)
    stored = integrations.credentials_of(vault, row).reveal()
    assert row.connected_at is not None
    assert stored["access_token"] in authz.access_tokens
    assert stored["refresh_token"] in authz.refresh_tokens
    assert stored["scope"] == "files.read" and stored["client_id"] == authz.client_id
    assert stored["access_token"] not in row.credentials  # encrypted at rest
    [verifier] = authz.verifiers_seen
    assert 43 <= len(verifier) <= 128  # RFC 7636 §4.1; the fake checked it against S256
    [connected] = events.read()
    assert connected["type"] == "oauth.connected"
    assert connected["data"]["integration"] == NAME and connected["data"]["refreshable"]
    assert stored["access_token"] not in json.dumps(connected)

    before = row.credentials
    replay = client.get(callback, headers={"Accept": "application/json"})
    assert replay.status_code == 400
    assert replay.get_json()["error"]["code"] == "INVALID_STATE"
    assert _row(sessions, tenant).credentials == before


def test_forged_state_and_missing_code_change_nothing(client, sessions, tenant, authz,
                                                      connectable):
    forged = client.get("/oauth/callback?code=abc&state=forged",
                        headers={"Accept": "application/json"})
    assert forged.status_code == 400 and forged.get_json()["error"]["code"] == "INVALID_STATE"
    no_state = client.get("/oauth/callback?code=abc")
    assert no_state.status_code == 400 and "not valid" in no_state.get_data(as_text=True)

    authorize_url = _connect(tenant)
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    missing = client.get(f"/oauth/callback?state={state}")
    assert missing.status_code == 400
    assert "no authorization code" in missing.get_data(as_text=True)
    assert _row(sessions, tenant).connected_at is None

    # The link still works: a request without a code did not spend its state.
    assert client.get(_browser(authorize_url)).status_code == 200


def test_the_provider_refusing_access_is_reported_and_changes_nothing(
        client, sessions, redis_client, tenant, authz, connectable):
    events = _Events(redis_client, tenant)
    before = _row(sessions, tenant).credentials
    authz.deny = True

    page = client.get(_browser(_connect(tenant)))

    assert page.status_code == 400
    assert "declined access" in page.get_data(as_text=True)
    row = _row(sessions, tenant)
    assert (row.credentials, row.connected_at) == (before, None)
    [failed] = events.read()
    assert failed["type"] == "oauth.failed" and failed["data"]["error"] == "access_denied"


def test_provider_text_is_escaped_on_the_page(client, tenant, authz, connectable):
    state = parse_qs(urlsplit(_connect(tenant)).query)["state"][0]

    page = client.get(f"/oauth/callback?state={state}&error=access_denied"
                      "&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E")

    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_code_delivered_with_another_links_state_fails_the_pkce_check(
        client, sessions, redis_client, tenant, authz, connectable):
    first, second = _connect(tenant), _connect(tenant)
    code = parse_qs(urlsplit(_browser(first)).query)["code"][0]
    other_state = parse_qs(urlsplit(second).query)["state"][0]
    events = _Events(redis_client, tenant)

    page = client.get(f"/oauth/callback?code={code}&state={other_state}",
                      headers={"Accept": "application/json"})

    assert page.status_code == 502
    assert page.get_json()["error"]["code"] == "TOKEN_EXCHANGE_FAILED"
    assert "invalid_grant" in page.get_json()["error"]["message"]
    assert _row(sessions, tenant).connected_at is None
    [failed] = events.read()
    assert failed["data"]["error"] == "invalid_grant"


def test_an_expired_link_is_refused(client, sessions, tenant, authz, connectable):
    authorize_url = _connect(tenant)
    with sessions() as session, session.begin():
        session.execute(update(OAuthState).where(OAuthState.tenant_id == tenant)
                        .values(expires_at=OAuthState.created_at))

    page = client.get(_browser(authorize_url), headers={"Accept": "application/json"})

    assert page.status_code == 400 and page.get_json()["error"]["code"] == "EXPIRED_STATE"
    assert _row(sessions, tenant).connected_at is None


def test_connect_refuses_an_integration_it_cannot_connect(sessions, vault, tenant, authz):
    with sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="plain", adapter="rest", base_url=authz.url))
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="nourl", adapter="rest", base_url=authz.url,
            auth_type="oauth2_authorization_code"))
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="noclient", adapter="rest", base_url=authz.url,
            auth_type="oauth2_authorization_code",
            config={"auth": {"authorize_url": authz.url + "/authorize"}}))

    for name, expected in (("plain", "the connect flow is for"), ("nourl", "authorize_url"),
                           ("noclient", "no client_id")):
        status, body = _hub("oauth", "connect", "--tenant", tenant, "--integration", name)
        assert status == 1 and expected in body["error"]["message"], (name, body)


def test_calls_use_the_token_and_refresh_it_with_rotation(worker, client_app, client, sessions,
                                                          vault, tenant, authz, connectable):
    assert client.get(_browser(_connect(tenant))).status_code == 200
    first_refresh = integrations.credentials_of(vault, _row(sessions, tenant)).reveal()[
        "refresh_token"]

    def call() -> dict:
        return client_app.send_task("hub.call", kwargs={
            "tenant": tenant, "integration": NAME, "operation": "get",
            "params": {"path": "/v1/me"}, "cache": False}).get(timeout=30)

    assert call()["data"] == {"path": "/v1/me", "user": "jane@example.com"}
    assert authz.spent_refresh_tokens == set()  # the stored access token was used

    authz.expire_access_tokens()  # the provider revokes it: 401, refresh, retry
    answer = call()

    assert answer["ok"] and answer["data"]["user"] == "jane@example.com"
    stored = integrations.credentials_of(vault, _row(sessions, tenant)).reveal()
    assert authz.spent_refresh_tokens == {first_refresh}
    assert stored["refresh_token"] != first_refresh
    assert stored["refresh_token"] in authz.refresh_tokens  # the rotated one, stored back
    assert stored["access_token"] in authz.access_tokens
    assert call()["ok"] and len(authz.spent_refresh_tokens) == 1  # no second refresh
