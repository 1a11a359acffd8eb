"""HMAC request signing (seed 003): ``X-HMAC-Signature`` = HMAC-SHA256 over the body.

Config (``config.auth.hmac`` for signing on top of another strategy, or
``config.auth`` for auth_type ``hmac``): ``header`` (default ``X-HMAC-Signature``),
``encoding`` ``hex`` (default) or ``base64``, ``timestamp_header`` (unset by
default: seed 003 signs the body alone; when set, the Unix time is sent in that
header and the signed message is ``<timestamp>.<body>``, which lets the provider
refuse replays). Credential: ``hmac_secret`` (or ``secret``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import requests

from hub.calls.auth.base import AuthContext, CredentialFields
from hub.platform.errors import AuthError


def body_bytes(request: requests.PreparedRequest) -> bytes:
    """The exact bytes of a prepared body (empty for none). Raises AuthError for a
    streamed body, which cannot be signed before it is sent."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    raise AuthError("cannot HMAC-sign a streamed request body")


def sign(secret: bytes, message: bytes, encoding: str = "hex") -> str:
    """HMAC-SHA256 of ``message`` as hex or base64."""
    digest = hmac.new(secret, message, hashlib.sha256)
    return digest.hexdigest() if encoding == "hex" else base64.b64encode(digest.digest()).decode()


class HmacAuth:
    credential_fields: ClassVar[CredentialFields] = CredentialFields(
        required=(("hmac_secret", "secret"),))

    def __init__(self, ctx: AuthContext, options: Mapping[str, Any] | None = None) -> None:
        self.ctx = ctx
        options = ctx.config if options is None else options
        self.header = str(options.get("header", "X-HMAC-Signature"))
        self.encoding = str(options.get("encoding", "hex"))
        if self.encoding not in ("hex", "base64"):
            raise AuthError(f"{ctx.owner}: hmac encoding must be 'hex' or 'base64'")
        self.timestamp_header = options.get("timestamp_header")

    def apply(self, request: requests.PreparedRequest) -> None:
        """Sign the prepared body (and timestamp, when configured) into the header."""
        message = body_bytes(request)
        if self.timestamp_header:
            stamp = str(int(time.time()))
            request.headers[str(self.timestamp_header)] = stamp
            message = stamp.encode() + b"." + message
        secret = self.ctx.credential("hmac_secret", "secret").encode()
        request.headers[self.header] = sign(secret, message, self.encoding)

    def invalidate(self) -> None:
        """A static secret: nothing to refresh."""
