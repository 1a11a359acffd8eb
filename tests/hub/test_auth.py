"""hub.calls.auth strategies against a local fake OAuth2 token server (RFC 6749 wire format)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac as std_hmac
import json
import threading
import time
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Response

from hub.calls import integrations
from hub.calls.auth import strategy_for
from hub.calls.integrations import IntegrationSpec, credentials_of
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.errors import AuthError, ValidationError
from hub.platform.services import Services
from tests.hub.fake_http import serve


def make_integration(services, tenant, base_url, auth_type, credentials, config=None):
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="svc", adapter="rest", base_url=base_url,
            auth_type=auth_type, config={"auth": config or {}}))
        integrations.set_credentials(session, services.vault, tenant, "svc", credentials)
    return load(services, tenant)


def load(services, tenant):
    with services.sessions() as session:
        row = integrations.get(session, tenant, "svc")
        session.expunge(row)
        return row


def prepared(url="http://provider.invalid/x", **kw) -> requests.PreparedRequest:
    return requests.Request(kw.pop("method", "GET"), url, **kw).prepare()


def apply(services, row) -> requests.PreparedRequest:
    request = prepared(json={"amount": 5})
    strategy_for(services, row, credentials_of(services.vault, row)).apply(request)
    return request


class TokenServer:
    """POST /oauth/token: client_credentials and refresh_token grants, rotating refresh
    tokens; counts requests; optionally holds answers until released."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.release = threading.Event()
        self.release.set()
        self.refresh_token = "rt-0"
        self.lock = threading.Lock()

    def __call__(self, request) -> Response:
        if request.path != "/oauth/token":
            return Response(json.dumps({"auth": request.headers.get("Authorization")}),
                            content_type="application/json")
        self.release.wait(10)
        grant = request.form.get("grant_type")
        if grant == "refresh_token" and request.form.get("refresh_token") != self.refresh_token:
            return Response(json.dumps({"error": "invalid_grant"}), status=400,
                            content_type="application/json")
        if grant == "client_credentials" and request.authorization is None \
                and request.form.get("client_secret") != "cs-secret-value":
            return Response(json.dumps({"error": "invalid_client"}), status=401,
                            content_type="application/json",
                            headers={"WWW-Authenticate": 'Basic realm="token"'})
        with self.lock:
            self.issued += 1
            body: dict[str, Any] = {"access_token": f"at-{self.issued}", "token_type": "bearer",
                                    "expires_in": self.expires_in}
            if grant == "refresh_token":
                self.refresh_token = f"rt-{self.issued}"
                body["refresh_token"] = self.refresh_token
        return Response(json.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


CC = {"client_id": "cid", "client_secret": "cs-secret-value"}


def test_static_strategies(services, tenant):
    row = make_integration(services, tenant, "http://provider.invalid", "api_key",
                           {"api_key": "k-123456"}, {"in": "query", "name": "key"})
    assert apply(services, row).url.endswith("/x?key=k-123456")
    with services.sessions() as session, session.begin():
        integrations.update(session, tenant, "svc", auth_type="api_key",
                            config={"auth": {"name": "X-Token", "prefix": "Token "}})
    assert apply(services, load(services, tenant)).headers["X-Token"] == "Token k-123456"
    with services.sessions() as session, session.begin():
        integrations.update(session, tenant, "svc", auth_type="basic", config={})
        integrations.set_credentials(session, services.vault, tenant, "svc",
                                     {"username": "ann", "password": "pw-9999"})
    basic = apply(services, load(services, tenant)).headers["Authorization"]
    assert basic == "Basic " + base64.b64encode(b"ann:pw-9999").decode()


def test_missing_credential_names_the_field_not_a_value(services, tenant):
    make_integration(services, tenant, "http://provider.invalid", "api_key",
                     {"api_key": "v-secret"})
    with services.sessions() as session, session.begin():  # the auth type changed since
        integrations.update(session, tenant, "svc", auth_type="bearer")
    with pytest.raises(AuthError) as info:
        apply(services, load(services, tenant))
    assert "token" in info.value.message and "v-secret" not in info.value.message


@pytest.mark.parametrize("auth_type, credentials, named", [
    ("bearer", {"tok": "v-secret"}, ["unknown key(s) tok", "missing token or access_token"]),
    ("basic", {"username": "u"}, ["missing password"]),
    ("none", {"api_key": "v-secret"}, ["unknown key(s) api_key"]),
])
def test_credentials_are_checked_against_the_auth_type(services, tenant, auth_type,
                                                       credentials, named):
    with pytest.raises(ValidationError) as info:
        make_integration(services, tenant, "http://provider.invalid", auth_type, credentials)
    assert all(n in info.value.message for n in named), info.value.message
    assert "v-secret" not in json.dumps(info.value.envelope())


def test_hmac_on_top_of_another_auth_type_needs_its_secret_too(services, tenant):
    with pytest.raises(ValidationError, match="missing hmac_secret or secret"):
        make_integration(services, tenant, "http://provider.invalid", "bearer",
                         {"token": "t"}, {"hmac": {"header": "X-Sig"}})
    row = make_integration(services, tenant, "http://provider.invalid", "bearer",
                           {"token": "t", "hmac_secret": "h"}, {"hmac": {"header": "X-Sig"}})
    assert apply(services, row).headers["X-Sig"]


def test_hmac_signature_over_exact_body(services, tenant):
    row = make_integration(services, tenant, "http://provider.invalid", "hmac",
                           {"hmac_secret": "hs-secret"},
                           {"timestamp_header": "X-HMAC-Timestamp"})
    request = apply(services, row)
    stamp = request.headers["X-HMAC-Timestamp"]
    expected = std_hmac.new(b"hs-secret", stamp.encode() + b"." + request.body,
                            hashlib.sha256).hexdigest()
    assert request.headers["X-HMAC-Signature"] == expected


def test_bearer_plus_hmac_signing(services, tenant):
    row = make_integration(services, tenant, "http://provider.invalid", "bearer",
                           {"token": "tok-1234", "hmac_secret": "hs-secret"},
                           {"hmac": {"encoding": "base64"}})
    request = apply(services, row)
    digest = std_hmac.new(b"hs-secret", request.body, hashlib.sha256).digest()
    assert request.headers["X-HMAC-Signature"] == base64.b64encode(digest).decode()
    assert request.headers["Authorization"] == "Bearer tok-1234"


def test_client_credentials_one_token_request_for_many_concurrent_calls(services, tenant):
    fake = TokenServer()
    fake.release.clear()
    with serve(fake) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        results: list[str] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                results.append(apply(services, row).headers["Authorization"])
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(12)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while server.count("/oauth/token") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        fake.release.set()
        for t in threads:
            t.join(20)
        assert not errors
        assert results == ["Bearer at-1"] * 12
        assert server.count("/oauth/token") == 1
        seen = server.seen[0]
        assert seen.form == {"grant_type": "client_credentials"}
        assert seen.headers["Authorization"] == "Basic " + base64.b64encode(
            b"cid:cs-secret-value").decode()


def test_cached_token_is_encrypted_and_expires_before_the_token(services, tenant):
    with serve(TokenServer(expires_in=600)) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        apply(services, row)
        keys = list(services.redis.scan_iter(services.settings.redis_key(
            "oauth2", tenant, str(row.id), "*")))
        token_keys = [k for k in keys if not k.endswith(":lock")]
        assert len(token_keys) == 1
        raw = services.redis.get(token_keys[0])
        assert "at-1" not in raw and "cs-secret-value" not in raw
        assert 500 < services.redis.pttl(token_keys[0]) / 1000 <= 540


def test_invalidate_refetches_once_and_ignores_stale_invalidations(services, tenant):
    with serve(TokenServer()) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        creds = credentials_of(services.vault, row)
        first, second = strategy_for(services, row, creds), strategy_for(services, row, creds)
        r1, r2 = prepared(), prepared()
        first.apply(r1)
        second.apply(r2)
        assert r1.headers["Authorization"] == r2.headers["Authorization"] == "Bearer at-1"
        first.invalidate()  # the provider answered 401 to at-1
        again = prepared()
        first.apply(again)
        assert again.headers["Authorization"] == "Bearer at-2"
        second.invalidate()  # a late 401 for at-1 must not drop at-2
        third = prepared()
        strategy_for(services, row, creds).apply(third)
        assert third.headers["Authorization"] == "Bearer at-2"
        assert server.count("/oauth/token") == 2


def test_client_secret_in_body_and_refusal(services, tenant):
    with serve(TokenServer()) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC,
                               {"client_auth": "body", "scope": "read"})
        apply(services, row)
        assert server.seen[0].form == {"grant_type": "client_credentials", "scope": "read",
                                       "client_id": "cid", "client_secret": "cs-secret-value"}
    with serve(TokenServer()) as server:
        bad = dict(CC, client_secret="wrong-secret")
        with services.sessions() as session, session.begin():
            integrations.update(session, tenant, "svc", base_url=server.url)
            integrations.set_credentials(session, services.vault, tenant, "svc", bad)
        with pytest.raises(AuthError) as info:
            apply(services, load(services, tenant))
        assert "invalid_client" in info.value.message
        assert "wrong-secret" not in json.dumps(info.value.envelope())


def test_refresh_token_rotation_is_stored_encrypted(services, tenant):
    fake = TokenServer()
    with serve(fake) as server:
        row = make_integration(services, tenant, server.url, "oauth2_refresh",
                               {"client_id": "cid", "client_secret": "cs-secret-value",
                                "refresh_token": "rt-0"})
        strategy = strategy_for(services, row, credentials_of(services.vault, row))
        first = prepared()
        strategy.apply(first)
        assert first.headers["Authorization"] == "Bearer at-1"
        stored = load(services, tenant)
        assert "rt-1" not in stored.credentials
        assert credentials_of(services.vault, stored).reveal()["refresh_token"] == "rt-1"
        # A 401: the next refresh must use the rotated token (stale Secret in hand).
        strategy.invalidate()
        second = prepared()
        strategy.apply(second)
        assert second.headers["Authorization"] == "Bearer at-2"
        assert [s.form["refresh_token"] for s in server.seen] == ["rt-0", "rt-1"]


def test_token_fetched_per_call_when_redis_is_down(services, tenant):
    with serve(TokenServer()) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        down = Services(dataclasses.replace(services.settings,
                                            redis_url="redis://127.0.0.1:1/0"),
                        RecordingDispatcher())
        try:
            for expected in ("Bearer at-1", "Bearer at-2"):
                assert apply(down, row).headers["Authorization"] == expected
            strategy_for(down, row, credentials_of(down.vault, row)).invalidate()
        finally:
            down.close()


def token_keys(services, tenant, row) -> list[str]:
    keys = services.redis.scan_iter(services.settings.redis_key("oauth2", tenant, str(row.id),
                                                                "*"))
    return [k for k in keys if not k.endswith(":lock")]


def test_a_cached_token_no_key_opens_is_refetched_not_a_vault_error(services, tenant):
    # Issue 9 item 13: after the old key was dropped, every call failed with
    # VAULT_ERROR until the cached token expired.
    from hub.platform.vault import Vault, generate_key

    with serve(TokenServer()) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        assert apply(services, row).headers["Authorization"] == "Bearer at-1"
        [key] = token_keys(services, tenant, row)
        ttl = services.redis.pttl(key)
        gone = Vault([generate_key()]).encrypt({"access_token": "at-1", "token_type": "Bearer"})
        services.redis.set(key, gone, px=ttl)

        assert apply(services, row).headers["Authorization"] == "Bearer at-2"
        assert apply(services, row).headers["Authorization"] == "Bearer at-2"  # cached again
        assert server.count("/oauth/token") == 2
        assert services.vault.decrypt(services.redis.get(key), owner="t")["access_token"] \
            == "at-2"


def test_seed_003s_oauth2_hmac_is_client_credentials_with_a_signed_body(services, tenant):
    # Issue 11: seed 003 registers its transactions API as `oauth2_hmac`.
    from tests.cli.conftest import Hub

    hub = Hub()
    with serve(TokenServer()) as server:
        code, added = hub.json("integrations", "add", "--tenant", tenant, "--name", "svc",
                               "--adapter", "rest", "--base-url", server.url,
                               "--auth-type", "oauth2_hmac")
        assert code == 0, added
        assert added["auth_type"] == "oauth2_client_credentials"
        assert added["config"]["auth"] == {"hmac": {"header": "X-HMAC-Signature"}}
        # The HMAC secret is a credential of the type, like the client's.
        code, refused = hub.json("credentials", "set", "--tenant", tenant,
                                 "--integration", "svc", input=json.dumps(CC))
        assert (code, refused["error"]["code"]) == (1, "VALIDATION_ERROR")
        assert "hmac_secret" in refused["error"]["message"]
        assert hub("credentials", "set", "--tenant", tenant, "--integration", "svc",
                   input=json.dumps({**CC, "hmac_secret": "hs-secret"})).exit_code == 0

        request = apply(services, load(services, tenant))

    assert request.headers["Authorization"] == "Bearer at-1"
    assert request.headers["X-HMAC-Signature"] == \
        std_hmac.new(b"hs-secret", request.body, hashlib.sha256).hexdigest()


def test_oauth2_hmac_keeps_the_operators_own_hmac_settings(services, tenant):
    make_integration(services, tenant, "http://provider.invalid", "bearer", {"token": "t"})
    with services.sessions() as session, session.begin():
        row = integrations.update(session, tenant, "svc", auth_type="oauth2_hmac",
                                  config={"auth": {"hmac": {"encoding": "base64"}},
                                          "retry": {"max_attempts": 2}})
        assert row.auth_type == "oauth2_client_credentials"
        assert row.config == {"auth": {"hmac": {"encoding": "base64"}},
                              "retry": {"max_attempts": 2}}
    with services.sessions() as session, session.begin(), \
            pytest.raises(ValidationError, match="unknown auth type 'oauth2_hmacc'"):
        integrations.update(session, tenant, "svc", auth_type="oauth2_hmacc")
