"""The registry of inbound webhook endpoints (``webhook_endpoints``), tenant-scoped.

An endpoint is reached at ``<public_url>/api/v1/webhooks/<source>/<token>``: the
token is unguessable (``secrets.token_urlsafe(32)``), the secrets are stored
encrypted by the vault as a JSON list, current first; a rotation keeps the
previous secret second so providers that still sign with it are accepted until
the next rotation. Functions flush but never commit: the caller owns the
transaction (``hub.platform.db.transaction``).
"""

from __future__ import annotations

import ipaddress
import re
import secrets as _secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.platform.config import Settings
from hub.platform.errors import NotFound, ValidationError
from hub.platform.models import WebhookEndpoint
from hub.platform.vault import Secret, Vault
from hub.webhooks import identity, signatures
from hub.webhooks.identity import Identity
from hub.webhooks.signatures import Options, Scheme

SOURCE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
#: What :func:`create` issues (``secrets.token_urlsafe(32)``: 43 characters of the
#: URL-safe base64 alphabet), with room for longer tokens.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")
MAX_SECRETS = 2  # current + the previous one during a rotation
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EndpointSpec:
    """What ``hub webhooks add`` asks for. ``secrets`` None: generate one if needed."""

    tenant: str
    source: str
    scheme: str
    secrets: Sequence[str] | None = None
    tolerance: int = signatures.DEFAULT_TOLERANCE
    allowed_ips: Sequence[str] = ()
    event_types: Sequence[str] = ()
    rate_limit_per_minute: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatedEndpoint:
    id: uuid.UUID
    token: str
    url: str
    #: Set only when the hub generated the secret: shown once, never again.
    generated_secret: Secret[str] | None = None


@dataclass(frozen=True)
class IngressEndpoint:
    """An endpoint as the hot path needs it: secrets decrypted, CIDRs parsed."""

    id: uuid.UUID
    tenant_id: str
    source: str
    active: bool
    scheme: Scheme
    secrets: tuple[str, ...] = field(repr=False)
    options: Options
    allowed_ips: tuple[Network, ...]
    event_types: tuple[str, ...]
    rate_limit_per_minute: int | None
    #: Where the endpoint's configuration says the event id and type are.
    identity: Identity = field(default_factory=Identity)


def endpoint_url(settings: Settings, source: str, token: str) -> str:
    """The URL a provider posts to."""
    return f"{settings.public_url.rstrip('/')}/api/v1/webhooks/{source}/{token}"


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; ValidationError naming a bad one."""
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)
    except ValueError as exc:
        raise ValidationError(f"allowed IP: {exc}") from None


def _validate(spec: EndpointSpec) -> tuple[Scheme, dict[str, Any]]:
    scheme = signatures.get_scheme(spec.scheme)
    if not SOURCE_PATTERN.fullmatch(spec.source):
        raise ValidationError("source must be 1-64 of a-z, 0-9, '_', '.', '-' "
                              "starting with a letter or digit")
    if spec.tolerance < 1:
        raise ValidationError("tolerance must be at least 1 second")
    if spec.rate_limit_per_minute is not None and spec.rate_limit_per_minute < 1:
        raise ValidationError("rate limit must be at least 1 per minute")
    if spec.secrets is not None and (not spec.secrets or not all(spec.secrets)):
        raise ValidationError("a given secret must not be empty")
    parse_networks(spec.allowed_ips)
    scheme_options = {k: v for k, v in spec.config.items() if k not in identity.KEYS}
    return scheme, {**signatures.validate_options(scheme.name, scheme_options),
                    **identity.validate(spec.config)}


def create(session: Session, vault: Vault, settings: Settings,
           spec: EndpointSpec) -> CreatedEndpoint:
    """Register an endpoint; generate its secret when the scheme needs one and none is given.

    Raises ValidationError (unknown scheme, bad source, CIDR or option).
    """
    scheme, config = _validate(spec)
    generated = scheme.new_secret() if spec.secrets is None and scheme.needs_secret else None
    stored = list(spec.secrets or ([generated] if generated else []))[:MAX_SECRETS]
    row = WebhookEndpoint(
        id=uuid.uuid4(), tenant_id=spec.tenant, source=spec.source, scheme=scheme.name,
        token=_secrets.token_urlsafe(32), secret=vault.encrypt(stored) if stored else None,
        config=config, tolerance_seconds=spec.tolerance,
        allowed_ips=[str(n) for n in parse_networks(spec.allowed_ips)],
        event_types=list(spec.event_types), rate_limit_per_minute=spec.rate_limit_per_minute)
    session.add(row)
    session.flush()
    return CreatedEndpoint(row.id, row.token, endpoint_url(settings, row.source, row.token),
                           Secret(generated) if generated else None)


def _get(session: Session, tenant: str, endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    try:
        key = endpoint_id if isinstance(endpoint_id, uuid.UUID) else uuid.UUID(str(endpoint_id))
    except ValueError:
        raise NotFound(f"webhook endpoint {endpoint_id} not found") from None
    row = session.scalar(select(WebhookEndpoint).where(
        WebhookEndpoint.id == key, WebhookEndpoint.tenant_id == tenant))
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return row


def describe(row: WebhookEndpoint, settings: Settings) -> dict[str, Any]:
    """A secret-free view of an endpoint for the CLI and the API."""
    return {
        "id": str(row.id), "tenant": row.tenant_id, "source": row.source,
        "scheme": row.scheme, "url": endpoint_url(settings, row.source, row.token),
        "active": row.active, "tolerance_seconds": row.tolerance_seconds,
        "allowed_ips": row.allowed_ips, "event_types": row.event_types,
        "rate_limit_per_minute": row.rate_limit_per_minute, "config": row.config,
        "has_secret": row.secret is not None, "received_count": row.received_count,
        "duplicate_count": row.duplicate_count, "rejected_count": row.rejected_count,
        "last_received_at": row.last_received_at, "created_at": row.created_at,
    }


def list_endpoints(session: Session, settings: Settings, tenant: str) -> list[dict[str, Any]]:
    """Every endpoint of ``tenant``, oldest first."""
    rows = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant)
                           .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
    return [describe(r, settings) for r in rows]


def show(session: Session, settings: Settings, tenant: str,
         endpoint_id: str | uuid.UUID) -> dict[str, Any]:
    """One endpoint of ``tenant``; NotFound otherwise (also for another tenant's id)."""
    return describe(_get(session, tenant, endpoint_id), settings)


def set_active(session: Session, settings: Settings, tenant: str,
               endpoint_id: str | uuid.UUID, active: bool) -> dict[str, Any]:
    """Enable or disable an endpoint (a disabled one answers 404). Raises NotFound."""
    row = _get(session, tenant, endpoint_id)
    row.active = active
    session.flush()
    return describe(row, settings)


def rotate_secret(session: Session, vault: Vault, tenant: str, endpoint_id: str | uuid.UUID,
                  new_secret: str | None = None) -> Secret[str] | None:
    """Make ``new_secret`` (generated when None) current, keep the previous one second.

    Returns the generated secret (to show once), or None when one was given.
    Raises NotFound, or ValidationError for a token-only endpoint.
    """
    row = _get(session, tenant, endpoint_id)
    scheme = signatures.get_scheme(row.scheme)
    if not scheme.needs_secret:
        raise ValidationError(f"scheme {row.scheme!r} has no secret to rotate")
    current = vault.decrypt(row.secret, owner=f"webhook endpoint {row.id}") if row.secret else []
    fresh = new_secret or scheme.new_secret()
    row.secret = vault.encrypt([fresh, *current][:MAX_SECRETS])
    session.flush()
    return None if new_secret else Secret(fresh)


def plausible_address(source: str, token: str) -> bool:
    """True when ``source`` and ``token`` have the shape of an endpoint's URL parts, so
    that anything else (a NUL, a newline, a 10 kB token) is refused without a lookup."""
    return bool(SOURCE_PATTERN.fullmatch(source) and TOKEN_PATTERN.fullmatch(token))


def load_for_ingress(session: Session, vault: Vault, source: str,
                     token: str) -> IngressEndpoint | None:
    """The endpoint behind ``token`` for ``source`` (active or not), or None.

    Raises VaultError when its secret cannot be decrypted (fail closed).
    """
    row = session.scalar(select(WebhookEndpoint).where(
        WebhookEndpoint.token == token, WebhookEndpoint.source == source))
    if row is None:
        return None
    secrets_ = vault.decrypt(row.secret, owner=f"webhook endpoint {row.id}") if row.secret else []
    return IngressEndpoint(
        id=row.id, tenant_id=row.tenant_id, source=row.source, active=row.active,
        scheme=signatures.get_scheme(row.scheme), secrets=tuple(secrets_),
        options=signatures.Options.from_config(row.config, row.tolerance_seconds),
        allowed_ips=parse_networks(row.allowed_ips), event_types=tuple(row.event_types),
        rate_limit_per_minute=row.rate_limit_per_minute,
        identity=Identity.from_config(row.config))
