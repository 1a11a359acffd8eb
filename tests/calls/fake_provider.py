"""A fake REST provider for the call pipeline tests, on a local port in a thread.

It speaks like a real JSON API: bearer/api-key auth checked against known
values (401 with a JSON error body otherwise), an OAuth2 token endpoint
(client credentials, ``expires_in``), 429 with ``Retry-After`` and
``X-RateLimit-*`` headers, 5xx error bodies, ETags. Tests script what the next
answers on a path are with :meth:`FakeProvider.script`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from werkzeug.wrappers import Request, Response

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.platform.config import Settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from tests.hub.fake_http import LocalServer, serve


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: Held (the request arrived, its answer not sent) until the test sets this.
    hold: threading.Event | None = None


@dataclass
class ScriptedServer:
    """What every fake provider shares: its local server (set by :func:`serving`),
    answers scripted per path, hit counts."""

    server: LocalServer | None = None
    scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def script(self, path: str, *replies: Reply) -> None:
        """The next answers on ``path``, in order; afterwards the fake's own answer."""
        with self.lock:
            self.scripts[path].extend(replies)

    def hits(self, path: str | None = None) -> int:
        assert self.server is not None
        return self.server.count(path)

    def next_reply(self, path: str) -> Reply | None:
        """The next scripted answer on ``path`` (after its delay), or None."""
        with self.lock:
            queue = self.scripts.get(path)
            reply = queue.popleft() if queue else None
        if reply is not None and reply.delay:
            time.sleep(reply.delay)  # the provider being slow is what is simulated
        if reply is not None and reply.hold is not None:
            reply.hold.wait(30)
        return reply

    def handle(self, request: Request) -> Response:
        raise NotImplementedError


Fake = TypeVar("Fake", bound=ScriptedServer)


@contextmanager
def serving(fake: Fake) -> Iterator[Fake]:
    """Run ``fake`` on a local port for the duration of the block."""
    with serve(fake.handle) as server:
        fake.server = server
        yield fake


@dataclass
class FakeProvider(ScriptedServer):
    api_key: str = field(default_factory=lambda: "ak_live_" + secrets.token_hex(12))
    client_id: str = "hub-client"
    client_secret: str = field(default_factory=lambda: "cs_" + secrets.token_hex(12))
    tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    token_requests: int = 0
    #: Requests being answered right now, and the most there ever were at once.
    in_flight: int = 0
    max_in_flight: int = 0

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # --- the wire ---------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle(self, request: Request) -> Response:
        if request.path == "/oauth/token":
            return self._token(request)
        reply = self.next_reply(request.path)
        if reply is not None and reply.status == 304:
            return Response(status=304, headers=reply.headers)
        if reply is not None and reply.status != 200:
            return _json(reply.status, reply.body or _error(reply.status), reply.headers)
        if not self._authorised(request):
            return _json(401, {"error": {"type": "invalid_request_error",
                                         "message": "Invalid API key provided"}},
                         {"WWW-Authenticate": 'Bearer realm="fake"'})
        body = reply.body if reply is not None else self._echo(request)
        return _json(200, body, reply.headers if reply else {"X-RateLimit-Remaining": "99"})

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if self.api_key in (request.headers.get("X-Api-Key"), request.args.get("api_key")):
            return True
        if auth.startswith("Bearer "):
            with self.lock:
                return auth[7:] in self.tokens
        return request.path.startswith("/public")

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            auth = request.authorization
            if auth is None or (auth.username, auth.password) != (self.client_id,
                                                                  self.client_secret):
                return _json(401, {"error": "invalid_client"})
        token = "at_" + secrets.token_hex(16)
        with self.lock:
            self.tokens.add(token)
            self.issued.append(token)
            self.token_requests += 1
        return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    @staticmethod
    def _echo(request: Request) -> dict[str, Any]:
        body = request.get_data()
        return {"method": request.method, "path": request.path, "query": dict(request.args),
                "json": json.loads(body) if body else None}


def _error(status: int) -> dict[str, Any]:
    return {"error": {"type": "api_error" if status >= 500 else "invalid_request_error",
                      "message": f"fake provider answered {status}"}}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json")


def rate_limited(retry_after: str = "1") -> Reply:
    """A 429 as Stripe/GitHub send it."""
    reset = str(int(time.time()) + 60)
    return Reply(429, {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
                 {"Retry-After": retry_after, "X-RateLimit-Limit": "100",
                  "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    with serving(FakeProvider()) as provider:
        yield provider


def register(settings: Settings, provider: FakeProvider, tenant: str, name: str = "crm",
             config: dict[str, Any] | None = None) -> None:
    """A ``rest`` integration of ``tenant`` pointing at ``provider`` with its API key, in
    the hub these settings name (a fault test's own database and Redis)."""
    services = Services(settings, RecordingDispatcher())
    try:
        with services.sessions() as session, session.begin():
            integrations.create(session, IntegrationSpec(
                tenant_id=tenant, name=name, adapter="rest", base_url=provider.url,
                auth_type="api_key", config=config or {}))
            integrations.set_credentials(session, services.vault, tenant, name,
                                         {"api_key": provider.api_key})
    finally:
        services.close()
