"""OAuth2 client credentials grant (RFC 6749 §4.4), token shared by every worker.

Credentials: ``client_id``, ``client_secret``. Config: see :mod:`hub.calls.auth.oauth2`.
"""

from __future__ import annotations

from typing import ClassVar

import requests

from hub.calls.auth import oauth2
from hub.calls.auth.base import AuthContext, CredentialFields
from hub.calls.auth.tokens import Token


class ClientCredentialsAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("client_id",),), optional=("client_secret",))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.cache = oauth2.token_cache(ctx, ctx.credential("client_id"),
                                        str(ctx.config.get("scope", "")))

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the bearer token, fetching one (once for all workers) when none is
        cached. Raises AuthError when the token endpoint refuses, RetryableError."""
        oauth2.set_bearer(request, self.cache.get(self._fetch))

    def _fetch(self) -> Token:
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience"):
            if self.ctx.config.get(name):
                form[name] = str(self.ctx.config[name])
        return oauth2.to_token(self.ctx, oauth2.request_token(self.ctx, form))

    def invalidate(self) -> None:
        """Drop the token we used (if still cached) so the next apply fetches anew."""
        self.cache.invalidate()
