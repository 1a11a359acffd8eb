"""API key in a header or a query parameter.

Config (``config.auth``): ``in`` = ``header`` (default) or ``query``; ``name`` =
header or parameter name (default ``X-Api-Key`` / ``api_key``); ``prefix`` put
before the key in a header (e.g. ``"Token "``). Credential: ``api_key``.
"""

from __future__ import annotations

import requests

from hub.calls.auth.base import AuthContext
from hub.platform.errors import AuthError


class ApiKeyAuth:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.location = str(ctx.config.get("in", "header"))
        if self.location not in ("header", "query"):
            raise AuthError(f"{ctx.owner}: auth.in must be 'header' or 'query'")
        default = "X-Api-Key" if self.location == "header" else "api_key"
        self.name = str(ctx.config.get("name", default))
        self.prefix = str(ctx.config.get("prefix", ""))

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the key header, or append the key parameter to the URL."""
        key = self.ctx.credential("api_key", "key")
        if self.location == "header":
            request.headers[self.name] = self.prefix + key
        else:
            request.prepare_url(request.url or "", {self.name: key})

    def invalidate(self) -> None:
        """A static key: nothing to refresh."""
