"""OAuth2 refresh token grant (RFC 6749 §6), with rotated refresh tokens stored back.

Credentials: ``refresh_token``, ``client_id`` and (for confidential clients)
``client_secret``. When the server rotates the refresh token (returns a new
one), it is written back to the integration's credentials, encrypted by the
vault, in its own transaction, before the access token is used: the old
refresh token may already be dead. The refresh happens under the shared token
lock, and the credentials are re-read inside it, so two workers never spend
the same refresh token.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import requests

from hub.calls import integrations
from hub.calls.auth import oauth2
from hub.calls.auth.base import AuthContext, CredentialFields
from hub.calls.auth.tokens import Token
from hub.platform.errors import AuthError


class RefreshTokenAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("client_id",), ("refresh_token",)), optional=("client_secret",))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        # Keyed by client only: the refresh token rotates, the access token stays shared.
        self.cache = oauth2.token_cache(ctx, ctx.credential("client_id"), "refresh")

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the bearer token, refreshing it (once for all workers) when none is
        cached. Raises AuthError (e.g. invalid_grant: re-authorise), RetryableError."""
        oauth2.set_bearer(request, self.cache.get(self._fetch))

    def _fetch(self) -> Token:
        credentials = self._fresh_credentials()
        form = {"grant_type": "refresh_token", "refresh_token": str(credentials["refresh_token"])}
        if self.ctx.config.get("scope"):
            form["scope"] = str(self.ctx.config["scope"])
        payload = oauth2.request_token(self.ctx, form)
        rotated = payload.get("refresh_token")
        if rotated and rotated != credentials["refresh_token"]:
            self._store({**credentials, "refresh_token": str(rotated)})
        return oauth2.to_token(self.ctx, payload)

    def _fresh_credentials(self) -> dict[str, Any]:
        values = self._read_credentials()
        if not values.get("refresh_token"):
            raise AuthError(f"{self.ctx.owner} has no refresh_token in its credentials")
        return values

    def _read_credentials(self) -> dict[str, Any]:
        # Another worker may have rotated the refresh token since this call started.
        if self.ctx.sessions is None:
            return dict(self.ctx.credentials.reveal())
        with self.ctx.sessions() as session:
            row = integrations.get_by_id(session, self.ctx.tenant,
                                         uuid.UUID(self.ctx.integration_id))
            return dict(integrations.credentials_of(self.ctx.vault, row).reveal())

    def _store(self, credentials: dict[str, Any]) -> None:
        if self.ctx.sessions is None:
            return
        with self.ctx.sessions() as session, session.begin():
            integrations.set_credentials(session, self.ctx.vault, self.ctx.tenant,
                                         self.ctx.integration_name, credentials)

    def invalidate(self) -> None:
        """Drop the access token we used so the next apply refreshes it."""
        self.cache.invalidate()
