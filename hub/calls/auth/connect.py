"""The OAuth2 authorization-code connect flow (RFC 6749 §4.1, PKCE per RFC 7636).

1. ``hub oauth connect`` (:func:`start`) stores a pending state in PostgreSQL -
   single use, expiring after ``HUB_OAUTH_STATE_TTL``, bound to the tenant and the
   integration, with only a SHA-256 digest of ``state`` kept and the PKCE
   ``code_verifier`` encrypted - and returns the provider's authorize URL carrying
   ``state`` and the S256 ``code_challenge``.
2. The provider sends the person's browser to ``GET /oauth/callback?code&state``
   on the web app, whose view calls :func:`complete`: the state is taken (deleted:
   a replay finds nothing), the code is exchanged with the verifier at the token
   endpoint through the SSRF-guarded HTTP session, the tokens are stored in the
   integration's encrypted credentials, the integration is marked connected
   (``connected_at``) and ``integration.oauth.connected`` is published.

A forged, replayed or expired state, a callback without a code, and a provider's
``error=access_denied`` each end in a :class:`CallbackOutcome` that says what
happened and what to do, and change nothing of the integration; a provider
error or a failed exchange also publishes ``integration.oauth.failed``. Neither
the code, the state, the verifier nor a token is ever logged, published or shown.

Config (``config.auth``): ``authorize_url`` (required), ``token_url`` (default
``/oauth/token`` under the base URL), ``scope``, ``client_auth`` (``basic`` or
``body``), ``redirect_uri`` (default ``HUB_PUBLIC_URL`` + ``/oauth/callback``),
``authorize_params`` (extra query parameters, e.g. ``{"access_type": "offline"}``).
Credentials set beforehand: ``client_id`` and, for a confidential client,
``client_secret``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import delete

from hub.calls import auth, integrations
from hub.calls.auth import oauth2
from hub.calls.auth.oauth2_authorization_code import (
    TOKEN_FIELDS,
    token_cache,
    token_credentials,
)
from hub.platform import events
from hub.platform.errors import HubError, NotFound, ValidationError
from hub.platform.models import Integration, OAuthState
from hub.platform.scheduler import utcnow
from hub.platform.services import Services

log = logging.getLogger(__name__)

AUTH_TYPE = "oauth2_authorization_code"
CALLBACK_PATH = "/oauth/callback"
#: RFC 6749 §A.7 error codes are printable ASCII; events keep a safe subset.
_ERROR_CODE = re.compile(r"[^A-Za-z0-9_.\-]")
DESCRIPTION_LIMIT = 200


# --- 1. start ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectStart:
    """What ``hub oauth connect`` prints: where to send the person, and until when."""

    tenant: str
    integration: str
    authorize_url: str
    redirect_uri: str
    expires_at: datetime


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of ``verifier``: BASE64URL(SHA256(verifier)), no
    padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def state_digest(state: str) -> str:
    """What is stored of a ``state``: its SHA-256 (a database dump holds no usable link)."""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def start(services: Services, tenant: str, name: str) -> ConnectStart:
    """Store a pending state for ``tenant``'s integration ``name`` and return the
    provider's authorize URL. Raises NotFound, ValidationError (not an
    authorization-code integration, no ``auth.authorize_url``, no ``client_id``)."""
    state = secrets.token_urlsafe(32)
    # RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~]; 64 bytes give 86.
    verifier = secrets.token_urlsafe(64)
    with services.sessions() as session, session.begin():
        row = integrations.get(session, tenant, name)
        config, client_id = _connectable(services, row)
        redirect_uri = str(config.get("redirect_uri") or
                           services.settings.public_url.rstrip("/") + CALLBACK_PATH)
        expires_at = utcnow() + timedelta(seconds=services.settings.oauth_state_ttl)
        session.add(OAuthState(state_hash=state_digest(state), tenant_id=tenant,
                               integration_id=row.id, redirect_uri=redirect_uri,
                               code_verifier=services.vault.encrypt({"v": verifier}),
                               expires_at=expires_at))
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             **({"scope": str(config["scope"])} if config.get("scope") else {}),
             **{str(k): str(v) for k, v in (config.get("authorize_params") or {}).items()},
             "state": state, "code_challenge": pkce_challenge(verifier),
             "code_challenge_method": "S256"}
    base = str(config["authorize_url"])
    url = base + ("&" if urlsplit(base).query else "?") + urlencode(query)
    return ConnectStart(tenant, name, url, redirect_uri, expires_at)


def _connectable(services: Services, row: Integration) -> tuple[Mapping[str, Any], str]:
    owner = f"integration {row.tenant_id}/{row.name}"
    if row.auth_type != AUTH_TYPE:
        raise ValidationError(f"{owner} uses auth type {row.auth_type!r}; the connect flow "
                              f"is for {AUTH_TYPE!r} (hub integrations update --auth-type)")
    config = auth.auth_config_of(row)
    url = str(config.get("authorize_url") or "")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ValidationError(f"{owner} has no absolute config.auth.authorize_url "
                              "(the provider's authorization endpoint)")
    client_id = integrations.credentials_of(services.vault, row).reveal().get("client_id")
    if not client_id:
        raise ValidationError(f"{owner} has no client_id: set the OAuth client first with "
                              "`hub credentials set` (client_id, client_secret)")
    return config, str(client_id)


# --- 2. the callback ----------------------------------------------------------------------

@dataclass(frozen=True)
class CallbackOutcome:
    """What the callback page says: an HTTP status, a code, and text for a person."""

    status: int
    code: str
    title: str
    message: str
    next_step: str
    tenant: str | None = None
    integration: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def as_json(self) -> dict[str, Any]:
        """``{"connected": true, "tenant", "integration"}``, or the error body of DESIGN §5
        ``{"error": {"code", "message"}}``."""
        if self.ok:
            return {"connected": True, "tenant": self.tenant, "integration": self.integration}
        return {"error": {"code": self.code, "message": f"{self.message} {self.next_step}"}}


@dataclass(frozen=True)
class _Pending:
    tenant: str
    integration_id: Any
    verifier_token: str
    redirect_uri: str
    expires_at: datetime


def _retry_hint() -> str:
    return "Ask your operator to run `hub oauth connect` again and open the new link."


def _refused(code: str, title: str, message: str) -> CallbackOutcome:
    return CallbackOutcome(400, code, title, message, _retry_hint())


def complete(services: Services, params: Mapping[str, str]) -> CallbackOutcome:
    """Handle the provider's redirect (``code`` and ``state``, or ``error``). Never
    raises for bad input: every case is an outcome; only a valid, unexpired state can
    change anything, and only once."""
    state, code, error = params.get("state"), params.get("code"), params.get("error")
    if not state:
        return _refused("INVALID_STATE", "This link is not valid",
                        "The request has no state, so it cannot be matched to a connection.")
    if not code and not error:
        return _refused("MISSING_CODE", "The provider sent no authorization code",
                        "The request has no code, so nothing was connected.")
    pending = _take(services, state)
    if pending is None:
        return _refused("INVALID_STATE", "This link is not valid any more",
                        "It was already used, or it was never issued by this hub. "
                        "Nothing was changed.")
    if pending.expires_at <= utcnow():
        return _refused("EXPIRED_STATE", "This link has expired",
                        "The connection was not completed in time. Nothing was changed.")
    try:
        with services.sessions() as session:
            row = integrations.get_by_id(session, pending.tenant, pending.integration_id)
    except NotFound:
        return _refused("INVALID_STATE", "This integration no longer exists",
                        "It was deleted after the link was issued. Nothing was changed.")
    if error:
        return _denied(services, row, error, params.get("error_description"))
    return _exchange(services, row, str(code), pending)


def _take(services: Services, state: str) -> _Pending | None:
    """Delete the pending state and return it: whoever deletes it owns it (single use)."""
    with services.sessions() as session, session.begin():
        found = session.execute(
            delete(OAuthState).where(OAuthState.state_hash == state_digest(state))
            .returning(OAuthState.tenant_id, OAuthState.integration_id,
                       OAuthState.code_verifier, OAuthState.redirect_uri,
                       OAuthState.expires_at)).one_or_none()
    return _Pending(*found) if found is not None else None


def _denied(services: Services, row: Integration, error: str,
            description: str | None) -> CallbackOutcome:
    code = _ERROR_CODE.sub("", error)[:64] or "error"
    detail = (description or "")[:DESCRIPTION_LIMIT] or None
    _publish_failed(services, row, code, detail)
    reason = "you declined access" if code == "access_denied" else f"it answered {code}"
    return CallbackOutcome(
        400, "AUTHORIZATION_DENIED", "The provider did not authorize the hub",
        f"{row.name} was not connected: {reason}" + (f" ({detail})." if detail else ".")
        + " Nothing was changed.",
        "To connect it, ask your operator for a new link and allow access.",
        row.tenant_id, row.name)


def _exchange(services: Services, row: Integration, code: str,
              pending: _Pending) -> CallbackOutcome:
    verifier = str(services.vault.decrypt(pending.verifier_token, owner="oauth state")["v"])
    credentials = integrations.credentials_of(services.vault, row)
    ctx = auth.context_for(services, row, credentials)
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": pending.redirect_uri, "code_verifier": verifier}
    try:
        payload = oauth2.request_token(ctx, form)
    except HubError as exc:
        error = str(exc.details.get("error") or exc.code.lower())
        log.warning("authorization code exchange for %s/%s failed: %s", row.tenant_id,
                    row.name, exc.code)
        _publish_failed(services, row, error, None)
        return CallbackOutcome(
            502, "TOKEN_EXCHANGE_FAILED", "The provider did not accept the authorization",
            f"{row.name} was not connected: the token endpoint answered {error}. "
            "Nothing was changed.", _retry_hint(), row.tenant_id, row.name)
    _store(services, row, ctx, payload, dict(credentials.reveal()))
    return CallbackOutcome(
        200, "CONNECTED", "Connected",
        f"{row.name} is now connected for {row.tenant_id}; the hub will use and renew "
        "its access from now on.", "You can close this window.", row.tenant_id, row.name)


def _store(services: Services, row: Integration, ctx: auth.AuthContext,
           payload: dict[str, Any], previous: dict[str, Any]) -> None:
    client_only = {k: v for k, v in previous.items() if k not in TOKEN_FIELDS}
    stored = token_credentials(ctx, payload, client_only)
    with services.sessions() as session, session.begin():
        current = integrations.set_credentials(session, services.vault, row.tenant_id,
                                               row.name, stored)
        current.connected_at = utcnow()
    try:  # a token of an earlier connection must not outlive it
        token_cache(ctx).clear()
    except Exception:  # noqa: BLE001 - Redis down: the cached copy expires on its own
        log.warning("cached token of %s/%s not cleared", row.tenant_id, row.name)
    events.publish(services.events, "oauth.connected", row.tenant_id, {
        "integration": row.name, "integration_id": str(row.id),
        "scope": stored.get("scope"), "refreshable": bool(stored.get("refresh_token"))})


def _publish_failed(services: Services, row: Integration, error: str,
                    description: str | None) -> None:
    events.publish(services.events, "oauth.failed", row.tenant_id, {
        "integration": row.name, "integration_id": str(row.id), "error": error,
        "description": description})


# --- housekeeping ---------------------------------------------------------------------------

def expire_states(services: Services) -> int:
    """Delete pending states past their expiry (retention); return how many."""
    with services.sessions() as session, session.begin():
        result = session.execute(delete(OAuthState).where(OAuthState.expires_at <= utcnow())
                                 .returning(OAuthState.id))
        return len(result.all())
