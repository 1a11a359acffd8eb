"""The adapter contract's pagination, multipart bodies, required idempotency keys,
supervisor alerts and a key in the URL path, each through the real pipeline
(execute_call) against a local server."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from hub import adapters
from hub.adapters.base import (
    Adapter,
    FilePart,
    IntegrationView,
    Operation,
    OutboundRequest,
    Pagination,
    join_url,
    json_body,
)
from hub.calls import integrations
from hub.calls.auth.api_key import with_path_segment
from hub.calls.integrations import IntegrationSpec
from hub.calls.pipeline import CallRequest, execute_call
from hub.platform import deadletters
from hub.platform.errors import AuthError, RateLimited
from hub.platform.models import IntegrationLog
from tests.hub.fake_http import LocalServer, serve

ITEMS = [{"n": i} for i in range(1, 8)]  # seven items, served three per page at most


def _pages(request: Request) -> Response:
    """``GET /items?size=&after=``: cursor pagination as most JSON APIs do it."""
    if request.path == "/upload":
        return _json({"files": {k: f.read().decode() for k, f in request.files.items()},
                      "form": dict(request.form)})
    if request.path == "/refuse":
        return _json({"ok": False, "why": "slow down", "wait": 7})
    size = min(int(request.args.get("size", "3")), 3)
    start = int(request.args.get("after", "0"))
    chunk = ITEMS[start:start + size]
    more = start + size < len(ITEMS)
    return _json({"data": chunk, "paging": {"next": str(start + size) if more else None}})


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class ContractAdapter(Adapter):
    name = "contract_pages_test"
    operations = (
        Operation("list", path="/items",
                  pagination=Pagination(items="data", cursor="paging.next",
                                        cursor_param="after", page_size_param="size",
                                        max_page_size=3, default_limit=5, max_pages=10)),
        Operation("upload", method="POST", path="/upload"),
        Operation("refuse", method="POST", path="/refuse", alert_on_dead_letter=True),
        Operation("commit", method="POST", path="/upload", requires_idempotency_key=True),
    )

    def build_request(self, integration: IntegrationView, op: Operation,
                      params: Mapping[str, Any]) -> OutboundRequest:
        if op.name != "upload":
            return super().build_request(integration, op, params)
        return OutboundRequest("POST", join_url(integration.base_url, op.path),
                               form={"caption": "hello"},
                               files={"doc": FilePart("a.txt", b"file \x00 bytes",
                                                      "text/plain")})

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        body = json_body(content)
        if isinstance(body, dict) and body.get("ok") is False:
            raise RateLimited(f"provider said {body['why']}", retry_after=body["wait"])
        return super().parse_response(op, status, headers, content)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    adapters.registry()[ContractAdapter.name] = ContractAdapter()
    try:
        with serve(_pages) as local:
            yield local
    finally:
        adapters.registry().pop(ContractAdapter.name, None)


def _register(services: Any, tenant: str, url: str, **spec: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:6]}"
    auth_type = spec.pop("auth_type", "none")
    credentials = spec.pop("credentials", {"api_key": "k-path-secret"})
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=name, adapter=ContractAdapter.name, base_url=url,
            auth_type=auth_type, **spec))
        if auth_type != "none":  # auth type none reads no credentials (and refuses them)
            integrations.set_credentials(session, services.vault, tenant, name, credentials)
    return name


def _call(services: Any, tenant: str, name: str, operation: str, **options: Any) -> Any:
    return execute_call(services, CallRequest(tenant, name, operation, **options))


def test_pages_are_followed_up_to_the_callers_limit(services, tenant, server):
    name = _register(services, tenant, server.url)
    outcome = _call(services, tenant, name, "list", params={"limit": 5})
    data = outcome.result["data"]
    assert [i["n"] for i in data["items"]] == [1, 2, 3, 4, 5]
    assert data["next_cursor"] == "5" and data["pages"] == 2
    # The second page asked only for what was still wanted, after the first page's cursor.
    assert [(s.query.get("size"), s.query.get("after")) for s in server.seen] == \
        [("3", None), ("2", "3")]
    with services.sessions() as session:
        rows = session.scalars(select(IntegrationLog).where(
            IntegrationLog.tenant_id == tenant).order_by(IntegrationLog.started_at)).all()
    assert [r.outcome for r in rows] == ["success", "success"]
    assert "after=3" in rows[1].url and str(rows[1].id) == outcome.result["log_id"]

    rest = _call(services, tenant, name, "list", params={"limit": 100, "after": "5"})
    assert [i["n"] for i in rest.result["data"]["items"]] == [6, 7]
    assert rest.result["data"]["next_cursor"] is None


def test_multipart_upload_is_sent_and_hmac_signed_over_its_exact_bytes(services, tenant,
                                                                      server):
    name = _register(services, tenant, server.url, auth_type="api_key",
                     config={"auth": {"in": "header", "hmac": {}}},
                     credentials={"api_key": "k-1234", "hmac_secret": "hs-multipart"})
    outcome = _call(services, tenant, name, "upload")
    assert outcome.result["data"] == {"files": {"doc": "file \x00 bytes"},
                                      "form": {"caption": "hello"}}
    seen = server.seen[-1]
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    expected = hmac.new(b"hs-multipart", seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["X-Hmac-Signature"] == expected


def test_an_exhausted_alerting_operation_says_so_and_others_do_not(services, tenant, server):
    name = _register(services, tenant, server.url, config={"retry": {"max_attempts": 2}})
    outcome = _call(services, tenant, name, "refuse")
    assert outcome.status == "retry" and outcome.error.code == "RATE_LIMITED"
    assert outcome.delay >= 7 and outcome.alert is False
    last = execute_call(services, CallRequest(tenant, name, "refuse"), attempt=2)
    assert last.status == "exhausted" and last.alert is True


def test_a_write_that_needs_an_idempotency_key_is_refused_without_one(services, tenant,
                                                                      server):
    name = _register(services, tenant, server.url)
    refused = _call(services, tenant, name, "commit")
    assert refused.status == "failed" and refused.error.code == "VALIDATION_ERROR"
    assert "idempotency_key" in refused.error.message and server.count() == 0
    done = _call(services, tenant, name, "commit", idempotency_key="k-1")
    assert done.status == "success" and server.seen[-1].headers["Idempotency-Key"] == "k-1"


def test_key_in_the_url_path_is_placed_after_the_base_and_redacted(services, tenant, server):
    url = with_path_segment("https://api.example/v1/getMe?x=1", "https://api.example/v1",
                            "bot12:ab/c")
    assert url == "https://api.example/v1/bot12:ab%2Fc/getMe?x=1"
    with pytest.raises(AuthError):
        with_path_segment("https://other.example/getMe", "https://api.example/v1", "k")
    name = _register(services, tenant, server.url + "/base", auth_type="api_key",
                     config={"auth": {"in": "path", "prefix": "key-"}})
    _call(services, tenant, name, "upload")
    assert server.seen[-1].path == "/base/key-k-path-secret/upload"
    with services.sessions() as session:
        logged = session.scalars(select(IntegrationLog.url).where(
            IntegrationLog.tenant_id == tenant)).one()
    assert logged.endswith("/base/key-[REDACTED]/upload")


def test_dead_letter_of_an_alerting_operation_publishes_a_supervisor_alert(services, tenant,
                                                                         redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe("integration." + deadletters.ALERT_EVENT)
    pubsub.get_message(timeout=1)  # the subscription confirmation
    try:
        letter = deadletters.record_and_announce(
            services, alert=True, origin="call", task_name="hub.transactions.commit_transaction",
            kwargs={"tenant": tenant, "integration": "pay", "draft_id": "D-1",
                    "idempotency_key": "k"},
            tenant_id=tenant, integration="pay", error_code="TIMEOUT", error="timed out",
            attempts=3, task_id="t-1")
        message = None
        for _ in range(50):
            message = pubsub.get_message(timeout=0.1)
            if message and json.loads(message["data"])["tenant"] == tenant:
                break
    finally:
        pubsub.close()
    assert message is not None
    event = json.loads(message["data"])
    assert event["type"] == "supervisor.alert" and event["data"]["dead_letter_id"] == str(letter)
    assert event["data"]["operation"] == "commit_transaction"
    assert event["data"]["ids"] == {"draft_id": "D-1"}
    assert (event["data"]["error_code"], event["data"]["attempts"]) == ("TIMEOUT", 3)
