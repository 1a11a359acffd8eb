"""A full run (successes, 401 re-auth, retries, a dead letter, a validation error) leaks
no credential into logs, audit rows, events, results, dead letters or stored task state."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from sqlalchemy import text

from tests.calls.fake_provider import Reply

TIMEOUT = 30
HMAC_SECRET = "hs_" + "5e7c1d0f9a2b4c6e8f1a3b5d7e9f0a2c"


class _Collector:
    def __init__(self, redis_client) -> None:  # type: ignore[no-untyped-def]
        self.messages: list[str] = []
        self.pubsub = redis_client.pubsub()
        self.pubsub.psubscribe("integration.*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                self.messages.append(message["data"])

    def close(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pubsub.close()
        return self.messages


def _run_everything(client_app, tenant, provider, make_integration):  # type: ignore[no-untyped-def]
    make_integration("keyed", config={"auth": {"in": "query", "name": "api_key"}})
    make_integration("oauth", auth_type="oauth2_client_credentials",
                     credentials={"client_id": provider.client_id,
                                  "client_secret": provider.client_secret,
                                  "hmac_secret": HMAC_SECRET},
                     config={"auth": {"token_url": provider.url + "/oauth/token",
                                      "hmac": {"header": "X-HMAC-Signature"}},
                             "retry": {"base": 0.01, "cap": 0.02, "max_attempts": 2}})
    provider.script("/v1/down", Reply(500), Reply(503))
    calls = [("keyed", "post", {"path": "/v1/a", "json": {"n": 1}}),
             ("oauth", "post", {"path": "/v1/b"}),
             ("oauth", "post", {"path": "/v1/down"}),
             ("oauth", "get", {"path": "/v1/items"}),
             ("oauth", "get", {"path": "/v1/items"}),
             ("keyed", "post", {"nopath": True})]
    results = []
    for name, op, params in calls:
        if params.get("path") == "/v1/items":
            provider.revoke_tokens()  # forces a 401 and one re-authentication
        r = client_app.send_task("hub.call", kwargs={"tenant": tenant, "integration": name,
                                                     "operation": op, "params": params})
        results.append(r.get(timeout=TIMEOUT, propagate=False))
    return results


def test_no_plaintext_credentials_anywhere(worker, client_app, sessions, redis_client, caplog,
                                           tenant, provider, make_integration):
    caplog.set_level(logging.DEBUG)
    collector = _Collector(redis_client)
    results = _run_everything(client_app, tenant, provider, make_integration)
    events = collector.close()
    assert provider.token_requests == 2 and provider.hits("/v1/down") == 2
    secrets = {provider.api_key, provider.client_secret, HMAC_SECRET, *provider.issued}
    assert len(secrets) >= 5
    assert all("x-hmac-signature" in {h.lower() for h in s.headers} for s in provider.server.seen
               if s.path == "/v1/b")

    logs = [r.getMessage() + (r.exc_text or "") for r in caplog.records
            if not r.name.startswith("werkzeug")]  # the fake provider's own access log
    with sessions() as s:
        rows = [json.dumps(dict(m), default=str) for m in s.execute(text(
            "SELECT * FROM integration_logs WHERE tenant_id = :t"), {"t": tenant}).mappings()]
        rows += [json.dumps(dict(m), default=str) for m in s.execute(text(
            "SELECT * FROM dead_letters WHERE tenant_id = :t"), {"t": tenant}).mappings()]
        stored = [json.dumps(dict(m), default=str) for m in s.execute(text(
            "SELECT result, traceback, kwargs FROM celery_taskmeta")).mappings()]
    assert len(rows) >= 8 and len(events) >= 10 and logs
    codes = [r.args[0]["error"]["code"] if isinstance(r, Exception) else "OK" for r in results]
    assert codes == ["OK", "OK", "DEAD_LETTERED", "OK", "OK", "VALIDATION_ERROR"]
    haystacks = {"log": logs, "audit/dead letter": rows, "event": events, "task state": stored,
                 "result": [json.dumps(r.args[0] if isinstance(r, Exception) else r)
                            for r in results]}
    for where, texts in haystacks.items():
        for item in texts:
            for secret in secrets:
                assert secret not in item, f"a credential leaked into a {where}: {item[:300]}"


@pytest.fixture(autouse=True)
def _debug_urllib3():  # type: ignore[no-untyped-def]
    """urllib3 logs request lines at DEBUG: make sure they are part of the scan."""
    logger = logging.getLogger("urllib3")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(previous)
