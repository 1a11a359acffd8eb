"""Google service accounts: a signed JWT exchanged for an access token (RFC 7523 §2.1).

The credential is the service account's JSON key file exactly as Google Cloud
downloads it (``hub credentials set ... < key.json``), stored encrypted like every
secret. For each new token the hub signs an RS256 JWT with the account's private
key (``iss`` = ``client_email``, ``scope``, ``aud`` = the token endpoint, ``iat``,
``exp`` one hour later, ``kid`` = ``private_key_id``; Google, "Using OAuth 2.0 for
Server to Server Applications") and posts it with ``grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer``. The token is cached and shared like
every OAuth2 token (:mod:`hub.calls.auth.tokens`: one fetch for all workers).

Config (``config.auth``, adapters may default it): ``scopes`` (a list or a
space-separated string; required), ``subject`` (a user to impersonate with
domain-wide delegation), ``token_url`` (overrides the key file's ``token_uri``;
tests point it at a local fake), ``margin``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from hub.calls.auth import oauth2
from hub.calls.auth.base import AuthContext
from hub.calls.auth.tokens import Token
from hub.platform.errors import AuthError, ValidationError

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: Google refuses assertions valid for longer than an hour.
ASSERTION_LIFETIME = 3600
_REQUIRED = ("client_email", "private_key")


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a key file the hub uses. ``repr`` never shows the key."""

    client_email: str
    private_key: RSAPrivateKey
    private_key_id: str | None
    token_uri: str

    def __repr__(self) -> str:
        return f"ServiceAccount({self.client_email!r})"


def parse_key_file(values: Mapping[str, Any]) -> ServiceAccount:
    """The service account of a key file's JSON object.

    Raises ValidationError naming the field that is missing or wrong, never a value:
    not ``type: service_account``, no ``client_email``, a ``private_key`` that is not
    an unencrypted PEM RSA key, a ``token_uri`` that is not an absolute http(s) URL.
    """
    if values.get("type") != "service_account":
        raise ValidationError('a Google service account key file has "type": '
                              '"service_account" (download a JSON key of the account)')
    missing = [name for name in _REQUIRED if not values.get(name)]
    if missing:
        raise ValidationError(f"the service account key file has no {', '.join(missing)}")
    token_uri = str(values.get("token_uri") or DEFAULT_TOKEN_URI)
    if urlsplit(token_uri).scheme not in ("http", "https") or not urlsplit(token_uri).hostname:
        raise ValidationError("the service account key file's token_uri is not an http(s) URL")
    return ServiceAccount(str(values["client_email"]), _private_key(values["private_key"]),
                          str(values["private_key_id"]) if values.get("private_key_id")
                          else None, token_uri)


def _private_key(pem: Any) -> RSAPrivateKey:
    try:
        key = load_pem_private_key(str(pem).encode(), password=None)
    except (ValueError, TypeError):
        # The library's message may quote part of the PEM: say only what is wrong.
        raise ValidationError("the service account's private_key is not an unencrypted "
                              "PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValidationError("the service account's private_key is not an RSA key (RS256)")
    return key


def scopes_of(config: Mapping[str, Any]) -> str:
    """``config["scopes"]`` as the space-separated ``scope`` claim (RFC 6749 §3.3).
    Raises AuthError when none is configured."""
    scopes = config.get("scopes") or config.get("scope")
    if isinstance(scopes, (list, tuple)):
        scopes = " ".join(str(s) for s in scopes)
    if not scopes:
        raise AuthError("google_service_account needs config.auth.scopes "
                        "(e.g. https://www.googleapis.com/auth/spreadsheets)")
    return str(scopes)


def assertion(account: ServiceAccount, *, scope: str, audience: str,
              subject: str | None = None, now: float | None = None) -> str:
    """The RS256-signed JWT a service account presents to the token endpoint."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"iss": account.client_email, "scope": scope, "aud": audience,
                              "iat": issued, "exp": issued + ASSERTION_LIFETIME}
    if subject:
        claims["sub"] = subject
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


class GoogleServiceAccountAuth:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        try:
            self.account = parse_key_file(ctx.credentials.reveal())
        except ValidationError as exc:
            raise AuthError(f"{ctx.owner}: {exc.message} "
                            "(store the key file with `hub credentials set`)") from None
        self.scope = scopes_of(ctx.config)
        self.subject = str(ctx.config["subject"]) if ctx.config.get("subject") else None
        self.url = str(ctx.config.get("token_url") or self.account.token_uri)
        self.cache = oauth2.token_cache(ctx, self.account.client_email,
                                        self.account.private_key_id or "", self.scope,
                                        self.subject or "", url=self.url)

    def apply(self, request: requests.PreparedRequest) -> None:
        """Set the bearer token, fetching one (once for all workers) when none is
        cached. Raises AuthError when Google refuses the assertion (``invalid_grant``:
        a revoked key, a wrong clock, a scope the account may not have),
        RetryableError for network errors and 5xx."""
        oauth2.set_bearer(request, self.cache.get(self._fetch))

    def _fetch(self) -> Token:
        signed = assertion(self.account, scope=self.scope, audience=self.url,
                           subject=self.subject)
        payload = oauth2.post_token_form(self.ctx, self.url, {"grant_type": GRANT_TYPE,
                                                              "assertion": signed})
        return oauth2.to_token(self.ctx, payload)

    def invalidate(self) -> None:
        """Drop the token we used so the next apply signs and exchanges a new one."""
        self.cache.invalidate()
