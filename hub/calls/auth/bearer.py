"""A static bearer token (RFC 6750 §2.1). Credential: ``token`` (or ``access_token``)."""

from __future__ import annotations

from typing import ClassVar

import requests

from hub.calls.auth.base import AuthContext, CredentialFields


class BearerAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("token", "access_token"),))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set ``Authorization: Bearer <token>``."""
        request.headers["Authorization"] = "Bearer " + self.ctx.credential("token",
                                                                           "access_token")

    def invalidate(self) -> None:
        """A static token: nothing to refresh."""
