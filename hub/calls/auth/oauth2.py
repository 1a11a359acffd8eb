"""Token endpoint requests shared by the OAuth2 strategies (RFC 6749 §4.4, §6, §5).

Config (``config.auth``): ``token_url`` (absolute, or relative to the base URL;
default ``/oauth/token``), ``scope``, ``audience``, ``client_auth`` = ``basic``
(default, RFC 6749 §2.3.1) or ``body`` (client_id/client_secret form fields),
``default_expires_in`` when the server omits ``expires_in`` (default 3600),
``margin`` seconds before expiry to refresh (default 60).
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis
import requests
from requests.auth import HTTPBasicAuth

from hub.calls import http
from hub.calls.auth.base import AuthContext
from hub.calls.auth.tokens import (
    DEFAULT_MARGIN,
    LOCK_TTL_MS,
    RotationCount,
    Token,
    TokenCache,
    rotate_cached,
)
from hub.platform.config import Settings
from hub.platform.errors import AuthError, RetryableError, UpstreamError
from hub.platform.vault import Vault


def token_url(ctx: AuthContext) -> str:
    """The token endpoint: ``auth.token_url``, resolved against the base URL."""
    url = str(ctx.config.get("token_url", "/oauth/token"))
    if "://" in url:
        return url
    return ctx.base_url.rstrip("/") + "/" + url.lstrip("/")


#: Redis namespace of every cached access token (under HUB_REDIS_PREFIX).
TOKEN_NAMESPACE = "oauth2"


def cached_tokens_pattern(settings: Settings) -> str:
    """The SCAN pattern of every token :func:`token_cache` stores (``hub keys rotate``)."""
    return settings.redis_key(TOKEN_NAMESPACE, "*")


def rotate_cached_tokens(redis_client: redis.Redis, vault: Vault,
                         settings: Settings) -> RotationCount:
    """Re-encrypt the cached access tokens of every integration under the current key
    (tokens no key opens are dropped). Raises redis.RedisError when Redis is down."""
    return rotate_cached(redis_client, vault, cached_tokens_pattern(settings))


def token_cache(ctx: AuthContext, *identity: str, url: str | None = None) -> TokenCache:
    """The shared cache of this integration's token. The key includes a digest of
    the client identity and token URL (``url``, default :func:`token_url`), so new
    credentials never reuse an old token."""
    url = url or token_url(ctx)
    digest = hashlib.sha256("\0".join((url,) + identity).encode()).hexdigest()[:16]
    key = ctx.settings.redis_key(TOKEN_NAMESPACE, ctx.tenant, ctx.integration_id, digest)
    return TokenCache(ctx.redis, ctx.vault, key,
                      margin=float(ctx.config.get("margin", DEFAULT_MARGIN)),
                      lock_ttl_ms=_lock_ttl_ms(ctx))


def _lock_ttl_ms(ctx: AuthContext) -> int:
    # The lock outlives the slowest token request (connect + read timeouts), so no
    # second worker takes over while the first may still spend the refresh token.
    request = ctx.settings.http_connect_timeout + ctx.settings.http_read_timeout
    return int(max(request + 5, LOCK_TTL_MS / 1000) * 1000)


def request_token(ctx: AuthContext, form: dict[str, str]) -> dict[str, Any]:
    """POST ``form`` (plus client authentication) to the token endpoint and return
    its JSON. Raises AuthError for a refusal (RFC 6749 §5.2: only the error code is
    kept, never the body), RetryableError for network/5xx, UpstreamError for junk."""
    client_id = ctx.credential("client_id")
    client_secret = ctx.credentials.reveal().get("client_secret")
    body = dict(form)
    auth = None
    if ctx.config.get("client_auth", "basic") == "body" or not client_secret:
        body["client_id"] = client_id
        if client_secret:
            body["client_secret"] = str(client_secret)
    else:
        auth = HTTPBasicAuth(client_id, str(client_secret))
    return post_token_form(ctx, token_url(ctx), body, auth=auth)


def post_token_form(ctx: AuthContext, url: str, form: dict[str, str], *,
                    auth: HTTPBasicAuth | None = None) -> dict[str, Any]:
    """POST ``form`` to the token endpoint ``url`` (SSRF-guarded, no redirects) and
    return its JSON. Raises as :func:`request_token`."""
    prepared = ctx.http.prepare_request(requests.Request(
        "POST", url, data=form, auth=auth, headers={"Accept": "application/json"}))
    response = http.send(ctx.http, prepared, ctx.settings, allow_redirects=False)
    return _token_json(ctx, response)


def _token_json(ctx: AuthContext, response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryableError(f"token endpoint of {ctx.owner} answered {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        code = payload.get("error") if isinstance(payload, dict) else None
        raise AuthError(f"token endpoint of {ctx.owner} refused the credentials "
                        f"({response.status_code} {code or 'no error code'})",
                        details={"status_code": response.status_code, "error": code})
    if not isinstance(payload, dict) or not payload.get("access_token"):
        raise UpstreamError(f"token endpoint of {ctx.owner} answered without an access_token")
    return payload


def to_token(ctx: AuthContext, payload: dict[str, Any]) -> Token:
    """A :class:`Token` from a token response (RFC 6749 §5.1)."""
    default = float(ctx.config.get("default_expires_in", 3600))
    try:
        expires_in = float(payload.get("expires_in") or default)
    except (TypeError, ValueError):
        expires_in = default
    return Token(str(payload["access_token"]), str(payload.get("token_type") or "Bearer"),
                 expires_in)


def set_bearer(request: requests.PreparedRequest, access_token: str) -> None:
    # RFC 6750 §2.1; token_type "bearer" is case-insensitive, so always send "Bearer".
    request.headers["Authorization"] = "Bearer " + access_token
