"""HTTP Basic (RFC 7617). Credentials: ``username``, ``password``."""

from __future__ import annotations

import requests
from requests.auth import HTTPBasicAuth

from hub.calls.auth.base import AuthContext


class BasicAuth:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set ``Authorization: Basic base64(username:password)``."""
        HTTPBasicAuth(self.ctx.credential("username"), self.ctx.credential("password"))(request)

    def invalidate(self) -> None:
        """Static credentials: nothing to refresh."""
