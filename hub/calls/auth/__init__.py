"""Auth strategies: one module per scheme, one interface (:class:`AuthStrategy`).

The pipeline builds one strategy per call and applies it to the prepared
request right before sending; on a 401 it calls ``invalidate()`` once,
re-applies and retries once::

    strategy = strategy_for(services, integration, credentials_of(vault, integration))
    strategy.apply(prepared)

``integration.config["auth"]`` configures the strategy; ``config["auth"]["hmac"]``
adds HMAC body signing on top of any strategy (seed 003's oauth2 + HMAC adapter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from hub import adapters
from hub.calls import http
from hub.calls.auth.api_key import ApiKeyAuth
from hub.calls.auth.base import AuthContext, AuthStrategy, NoAuth
from hub.calls.auth.basic import BasicAuth
from hub.calls.auth.bearer import BearerAuth
from hub.calls.auth.google_service_account import (
    GoogleServiceAccountAuth,
    parse_key_file,
)
from hub.calls.auth.hmac import HmacAuth
from hub.calls.auth.oauth2_authorization_code import AuthorizationCodeAuth
from hub.calls.auth.oauth2_client_credentials import ClientCredentialsAuth
from hub.calls.auth.oauth2_refresh import RefreshTokenAuth
from hub.platform.errors import AuthError
from hub.platform.models import Integration
from hub.platform.services import Services
from hub.platform.vault import Secret

__all__ = [
    "STRATEGIES",
    "AuthContext",
    "AuthStrategy",
    "build",
    "check_credentials",
    "context_for",
    "strategy_for",
]

STRATEGIES: dict[str, Callable[[AuthContext], AuthStrategy]] = {
    "none": NoAuth,
    "api_key": ApiKeyAuth,
    "bearer": BearerAuth,
    "basic": BasicAuth,
    "oauth2_client_credentials": ClientCredentialsAuth,
    "oauth2_refresh": RefreshTokenAuth,
    "oauth2_authorization_code": AuthorizationCodeAuth,
    "hmac": HmacAuth,
    "google_service_account": GoogleServiceAccountAuth,
}

#: Auth types whose credentials have a shape checked when they are stored, so a
#: wrong file is refused by `hub credentials set`, not by the first call.
CREDENTIAL_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "google_service_account": parse_key_file,
}


class Signed:
    """Another strategy, then HMAC signing of the final request."""

    def __init__(self, inner: AuthStrategy, signer: HmacAuth) -> None:
        self.inner, self.signer = inner, signer

    def apply(self, request: requests.PreparedRequest) -> None:
        """Authenticate with the inner strategy, then sign the final request."""
        self.inner.apply(request)
        self.signer.apply(request)

    def invalidate(self) -> None:
        """Invalidate the inner strategy (the HMAC secret is static)."""
        self.inner.invalidate()


def context_for(services: Services, integration: Integration,
                credentials: Secret[dict[str, Any]]) -> AuthContext:
    """The :class:`AuthContext` of ``integration`` (its pooled HTTP session, Redis,
    vault, ``config["auth"]``)."""
    auth_config = auth_config_of(integration)
    return AuthContext(
        settings=services.settings, redis=services.redis, vault=services.vault,
        http=http.session_for(str(integration.id), services.settings),
        sessions=services.sessions, tenant=integration.tenant_id,
        integration_id=str(integration.id), integration_name=integration.name,
        base_url=integration.base_url, config=auth_config, credentials=credentials)


def auth_config_of(integration: Integration) -> Mapping[str, Any]:
    """``config["auth"]`` of ``integration`` over its adapter's ``auth_defaults``."""
    config = integration.config or {}
    return {**_adapter_auth_defaults(integration.adapter), **(config.get("auth") or {})}


def check_credentials(integration: Integration, values: Mapping[str, Any]) -> None:
    """Refuse credentials that cannot work with the integration's auth type: keys its
    strategy does not read or a missing one (``credential_fields``; HMAC signing on top,
    from the config or the adapter's defaults, adds the HMAC secret), or a wrong shape
    (a service account key file without its private key). Raises ValidationError
    naming fields, never values."""
    auth_type = integration.auth_type or "none"
    check = CREDENTIAL_CHECKS.get(auth_type)
    if check is not None:
        check(values)
    fields = getattr(STRATEGIES.get(auth_type), "credential_fields", None)
    if fields is None:  # a strategy that declares none accepts any keys
        return
    if auth_type != "hmac" and isinstance(auth_config_of(integration).get("hmac"), Mapping):
        fields = fields + HmacAuth.credential_fields
    fields.check(auth_type, values)


def _adapter_auth_defaults(name: str) -> Mapping[str, Any]:
    """The adapter's ``auth_defaults`` (an unknown adapter has none: the call fails
    later with NOT_FOUND, not here)."""
    adapter = adapters.registry().get(name)
    return adapter.auth_defaults if adapter is not None else {}


def build(auth_type: str, ctx: AuthContext) -> AuthStrategy:
    """The strategy for ``auth_type``. Raises AuthError for an unsupported type or
    a missing credential."""
    factory = STRATEGIES.get(auth_type)
    if factory is None:
        raise AuthError(f"{ctx.owner}: auth type {auth_type!r} is not supported "
                          f"(supported: {', '.join(STRATEGIES)})")
    strategy = factory(ctx)
    hmac_options = ctx.config.get("hmac")
    if auth_type != "hmac" and isinstance(hmac_options, Mapping):
        return Signed(strategy, HmacAuth(ctx, hmac_options))
    return strategy


def strategy_for(services: Services, integration: Integration,
                 credentials: Secret[dict[str, Any]]) -> AuthStrategy:
    """A fresh strategy for one call of ``integration``. Raises AuthError."""
    return build(integration.auth_type or "none", context_for(services, integration,
                                                              credentials))
