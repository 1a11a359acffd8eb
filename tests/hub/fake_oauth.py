"""A fake OAuth2 authorization server and API, speaking RFC 6749 and RFC 7636 (PKCE).

- ``GET /authorize``: checks ``response_type=code``, the client, the registered
  redirect URI and ``code_challenge_method=S256``; the person "approves" (or denies,
  with ``deny=True``) and is redirected (302) to the redirect URI with ``code`` and
  ``state`` (or ``error=access_denied``).
- ``POST /oauth/token``: client authentication (HTTP Basic or body, RFC 6749 §2.3.1);
  ``authorization_code`` checks the code (single use, expiring), its redirect URI and
  the PKCE verifier against the challenge (``invalid_grant`` otherwise, §5.2);
  ``refresh_token`` rotates the refresh token and refuses a spent one.
- ``GET /v1/...``: a protected API: ``Authorization: Bearer <access token>`` or 401
  with ``WWW-Authenticate`` (RFC 6750 §3).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from tests.hub.fake_http import LocalServer, serve


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires: float


@dataclass
class FakeAuthorizationServer:
    redirect_uri: str
    client_id: str = "hub-app"
    client_secret: str = field(default_factory=lambda: "cs_" + secrets.token_hex(12))
    access_ttl: int = 3600
    deny: bool = False
    server: LocalServer | None = None
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    verifiers_seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def handle(self, request: Request) -> Response:
        if request.path == "/authorize":
            return self._authorize(request)
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        if request.path.startswith("/v1/"):
            return self._api(request)
        return _json(404, {"error": "not_found"})

    # --- the authorization endpoint (RFC 6749 §4.1.1, RFC 7636 §4.3) ------------------

    def _authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id or args.get("redirect_uri") != \
                self.redirect_uri:
            # §4.1.2.1: never redirect to an unverified URI.
            return Response("unknown client or redirect_uri", status=400)
        if args.get("response_type") != "code" or args.get("code_challenge_method") != "S256" \
                or not args.get("code_challenge"):
            return self._redirect({"error": "invalid_request", "state": args.get("state")})
        if self.deny:
            return self._redirect({"error": "access_denied",
                                   "error_description": "The user denied the request",
                                   "state": args["state"]})
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = Grant(self.client_id, args["redirect_uri"],
                                     args["code_challenge"], args.get("scope", ""),
                                     time.time() + 600)
        return self._redirect({"code": code, "state": args["state"]})

    def _redirect(self, params: dict[str, Any]) -> Response:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return Response(status=302, headers={"Location": f"{self.redirect_uri}?{query}"})

    # --- the token endpoint (RFC 6749 §4.1.3, §6, RFC 7636 §4.6) ------------------------

    def _token(self, request: Request) -> Response:
        if not self._client_authenticated(request):
            return _json(401, {"error": "invalid_client"},
                         {"WWW-Authenticate": 'Basic realm="fake"'})
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(request)
        if grant_type == "refresh_token":
            return self._refresh(request)
        return _json(400, {"error": "unsupported_grant_type"})

    def _client_authenticated(self, request: Request) -> bool:
        basic = request.authorization
        if basic is not None:
            return (basic.username, basic.password) == (self.client_id, self.client_secret)
        return (request.form.get("client_id"), request.form.get("client_secret")) == (
            self.client_id, self.client_secret)

    def _exchange(self, request: Request) -> Response:
        form = request.form
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        self.verifiers_seen.append(verifier)
        if grant is None or grant.expires < time.time() or \
                form.get("redirect_uri") != grant.redirect_uri:
            return _json(400, {"error": "invalid_grant",
                               "error_description": "code unknown, used or expired"})
        if _s256(verifier) != grant.challenge:
            return _json(400, {"error": "invalid_grant",
                               "error_description": "PKCE verification failed"})
        return self._issue(grant.scope)

    def _refresh(self, request: Request) -> Response:
        token = request.form.get("refresh_token", "")
        with self.lock:
            if token not in self.refresh_tokens:
                return _json(400, {"error": "invalid_grant",
                                   "error_description": "refresh token spent or unknown"})
            self.refresh_tokens.discard(token)  # rotation: each is good once
            self.spent_refresh_tokens.add(token)
        return self._issue("")

    def _issue(self, scope: str) -> Response:
        access, refresh = "at_" + secrets.token_hex(16), "rt_" + secrets.token_hex(16)
        with self.lock:
            self.access_tokens[access] = time.time() + self.access_ttl
            self.refresh_tokens.add(refresh)
        body = {"access_token": access, "token_type": "bearer", "expires_in": self.access_ttl,
                "refresh_token": refresh}
        if scope:
            body["scope"] = scope
        return _json(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # --- the protected API (RFC 6750) ---------------------------------------------------------

    def _api(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            valid = self.access_tokens.get(token, 0) > time.time()
        if not valid:
            return _json(401, {"error": "invalid_token"},
                         {"WWW-Authenticate": 'Bearer realm="fake", error="invalid_token"'})
        return _json(200, {"path": request.path, "user": "jane@example.com"})


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json")


@contextmanager
def fake_authorization_server(redirect_uri: str) -> Iterator[FakeAuthorizationServer]:
    fake = FakeAuthorizationServer(redirect_uri=redirect_uri)
    with serve(fake.handle) as server:
        fake.server = server
        yield fake
