"""API key in a header, a query parameter or the URL path.

Config (``config.auth``): ``in`` = ``header`` (default), ``query`` or ``path``;
``name`` = header or parameter name (default ``X-Api-Key`` / ``api_key``);
``prefix`` put before the key in a header (e.g. ``"Token "``) or in its path
segment. ``path`` puts ``/<prefix><key>`` right after the base URL's path, as
Telegram's Bot API wants it (``https://api.telegram.org/bot<token>/getMe``,
core.telegram.org/bots/api#making-requests). Credential: ``api_key`` (or ``key``,
``token``).
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from hub.calls.auth.base import AuthContext, CredentialFields
from hub.platform.errors import AuthError

LOCATIONS = ("header", "query", "path")


def with_path_segment(url: str, base_url: str, segment: str) -> str:
    """``url`` (under ``base_url``) with ``segment`` inserted right after the base URL's
    path. ``:`` stays as it is (RFC 3986 §3.3 allows it in a segment); every other
    reserved character is percent-encoded. Raises AuthError for a URL outside the base."""
    parts, base_path = urlsplit(url), urlsplit(base_url).path.rstrip("/")
    if not (parts.path == base_path or parts.path.startswith(base_path + "/")):
        raise AuthError("cannot put the key in the path of a URL outside the base URL")
    path = f"{base_path}/{quote(segment, safe=':')}{parts.path[len(base_path):]}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class ApiKeyAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("api_key", "key"),))

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.location = str(ctx.config.get("in", "header"))
        if self.location not in LOCATIONS:
            raise AuthError(f"{ctx.owner}: auth.in must be one of {', '.join(LOCATIONS)}")
        default = "X-Api-Key" if self.location == "header" else "api_key"
        self.name = str(ctx.config.get("name", default))
        self.prefix = str(ctx.config.get("prefix", ""))

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the key header, append the key parameter to the URL, or put the key in
        the URL path. Raises AuthError when the credential is missing."""
        key = self.ctx.credential("api_key", "key", "token")
        if self.location == "header":
            request.headers[self.name] = self.prefix + key
        elif self.location == "query":
            request.prepare_url(request.url or "", {self.name: key})
        else:
            request.url = with_path_segment(request.url or "", self.ctx.base_url,
                                            self.prefix + key)

    def invalidate(self) -> None:
        """A static key: nothing to refresh."""
