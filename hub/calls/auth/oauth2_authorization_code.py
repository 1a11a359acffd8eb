"""OAuth2 authorization code grant (RFC 6749 §4.1): the tokens a person granted.

``hub oauth connect`` (:mod:`hub.calls.auth.connect`) stores the access token, its
expiry and the refresh token in the integration's encrypted credentials. A call
uses the access token while it is valid (shared by every worker through the token
cache, and kept in PostgreSQL so losing Redis loses nothing), then refreshes it
exactly as :class:`~hub.calls.auth.oauth2_refresh.RefreshTokenAuth` does: once for
all workers, under the shared lock, rotated refresh tokens stored back. The new
access token is stored back too. A provider that issued no refresh token, or one
that refuses it (``invalid_grant``), ends in AUTH_ERROR naming the fix: connect
again.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import requests

from hub.calls.auth import oauth2
from hub.calls.auth.base import AuthContext, CredentialFields
from hub.calls.auth.oauth2_refresh import RefreshTokenAuth
from hub.calls.auth.tokens import Token, TokenCache
from hub.platform.errors import AuthError

#: Credential fields the connect flow writes (besides the client's own).
TOKEN_FIELDS = ("access_token", "token_type", "expires_at", "refresh_token", "scope")


def token_credentials(ctx: AuthContext, payload: dict[str, Any],
                      previous: dict[str, Any]) -> dict[str, Any]:
    """``previous`` credentials with the tokens of a token response (RFC 6749 §5.1):
    a response without a refresh token keeps the one we had (§6: the server may
    leave it unchanged)."""
    token = oauth2.to_token(ctx, payload)
    stored = {**previous, "access_token": token.access_token,
              "token_type": token.token_type, "expires_at": time.time() + token.expires_in}
    if payload.get("refresh_token"):
        stored["refresh_token"] = str(payload["refresh_token"])
    if payload.get("scope"):
        stored["scope"] = str(payload["scope"])
    return stored


def token_cache(ctx: AuthContext) -> TokenCache:
    """The access token shared by every worker (keyed by client: a rotated refresh
    token does not change it). Raises AuthError without a client_id."""
    return oauth2.token_cache(ctx, ctx.credential("client_id"), "authorization_code")


class AuthorizationCodeAuth(RefreshTokenAuth):
    # The operator sets the client; `hub oauth connect` adds the tokens.
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("client_id",),), optional=("client_secret", *TOKEN_FIELDS))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.cache = token_cache(ctx)
        self._applied: str | None = None
        self._rejected: str | None = None

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the bearer token: the stored one while valid, else a refreshed one.
        Raises AuthError (not connected, or the grant is gone), RetryableError."""
        self._applied = self.cache.get(self._fetch)
        oauth2.set_bearer(request, self._applied)

    def _fetch(self) -> Token:
        credentials = self._connected_credentials()
        stored = self._stored_token(credentials)
        if stored is not None:
            return stored
        if not credentials.get("refresh_token"):
            raise AuthError(f"{self.ctx.owner}: the access token expired and the provider "
                            "gave no refresh token; run `hub oauth connect` again")
        form = {"grant_type": "refresh_token",
                "refresh_token": str(credentials["refresh_token"])}
        payload = oauth2.request_token(self.ctx, form)
        self._store(token_credentials(self.ctx, payload, credentials))
        return oauth2.to_token(self.ctx, payload)

    def _connected_credentials(self) -> dict[str, Any]:
        values = self._read_credentials()
        if not values.get("access_token") and not values.get("refresh_token"):
            raise AuthError(f"{self.ctx.owner} is not connected: run `hub oauth connect "
                            f"--tenant {self.ctx.tenant} --integration "
                            f"{self.ctx.integration_name}`")
        return values

    def _stored_token(self, credentials: dict[str, Any]) -> Token | None:
        """The stored access token if it is still good for a while and the provider has
        not just refused it."""
        access = credentials.get("access_token")
        remaining = float(credentials.get("expires_at") or 0) - time.time()
        margin = float(self.ctx.config.get("margin", 60))
        if not access or access == self._rejected or remaining <= margin:
            return None
        return Token(str(access), str(credentials.get("token_type") or "Bearer"), remaining)

    def invalidate(self) -> None:
        """The provider refused the token we sent: drop it, and refresh next time rather
        than use the stored copy again."""
        self._rejected = self._applied
        self.cache.invalidate()
