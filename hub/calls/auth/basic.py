"""HTTP Basic (RFC 7617). Credentials: ``username``, ``password``."""

from __future__ import annotations

from typing import ClassVar

import requests
from requests.auth import HTTPBasicAuth

from hub.calls.auth.base import AuthContext, CredentialFields


class BasicAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("username",), ("password",)))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set ``Authorization: Basic base64(username:password)``."""
        HTTPBasicAuth(self.ctx.credential("username"), self.ctx.credential("password"))(request)

    def invalidate(self) -> None:
        """Static credentials: nothing to refresh."""
