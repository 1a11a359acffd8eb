"""The integrations registry: tenant-scoped CRUD, credentials stored only encrypted.

Every function takes the tenant explicitly and filters by it: tenant B asking
for tenant A's integration gets NotFound, exactly as if it did not exist.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import redis
from sqlalchemy import delete, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import adapters
from hub.adapters import versions
from hub.calls import http
from hub.platform import changes, events
from hub.platform.db import on_commit
from hub.platform.errors import Conflict, IntegrationDisabled, NotFound, ValidationError
from hub.platform.models import AUTH_TYPES, CacheEntry, CallResult, Integration
from hub.platform.scheduler import utcnow
from hub.platform.services import Services
from hub.platform.vault import Secret, Vault

MUTABLE_FIELDS = frozenset({
    "base_url", "config", "auth_type", "rate_limit_per_minute", "rate_limit_per_hour",
    "rate_limit_per_day", "priority", "cost_per_call", "adapter",
})


#: Auth type names accepted where an integration is registered or changed, each
#: stored as a real type plus what it adds to ``config.auth`` (the operator's own
#: ``config.auth`` keys win). Seed 003 names OAuth2 client credentials with every
#: body HMAC-signed into ``X-HMAC-Signature`` ``oauth2_hmac``; as an alias it needs
#: no strategy, column value or migration of its own, and any adapter can use it.
AUTH_TYPE_ALIASES: dict[str, tuple[str, Mapping[str, Any]]] = {
    "oauth2_hmac": ("oauth2_client_credentials", {"hmac": {"header": "X-HMAC-Signature"}}),
}
#: What ``--auth-type`` accepts: the stored types and their aliases.
ACCEPTED_AUTH_TYPES = (*AUTH_TYPES, *AUTH_TYPE_ALIASES)


def unalias_auth(auth_type: str, config: Mapping[str, Any] | None
                 ) -> tuple[str, dict[str, Any] | None]:
    """``auth_type`` and ``config`` as stored: an alias (:data:`AUTH_TYPE_ALIASES`)
    becomes its real type, its auth settings merged under the operator's own."""
    alias = AUTH_TYPE_ALIASES.get(auth_type)
    if alias is None:
        return auth_type, None if config is None else dict(config)
    real, auth = alias
    config = dict(config or {})
    config["auth"] = {**auth, **(config.get("auth") or {})}
    return real, config


@dataclass(frozen=True)
class IntegrationSpec:
    """What an operator gives to create an integration."""

    tenant_id: str
    name: str
    adapter: str
    base_url: str
    auth_type: str = "none"
    config: dict[str, Any] | None = None
    rate_limit_per_minute: int | None = None
    rate_limit_per_hour: int | None = None
    rate_limit_per_day: int | None = None
    priority: int = 0
    cost_per_call: Decimal = Decimal(0)
    fallback: str | None = None


def _validate(spec: IntegrationSpec) -> None:
    if not spec.tenant_id or not spec.name:
        raise ValidationError("tenant and name are required")
    if spec.adapter not in adapters.registry():
        raise ValidationError(f"unknown adapter {spec.adapter!r}; installed: "
                              f"{', '.join(sorted(adapters.registry()))}",
                              details={"adapters": sorted(adapters.registry())})
    if spec.auth_type not in ACCEPTED_AUTH_TYPES:
        raise ValidationError(f"unknown auth type {spec.auth_type!r}; "
                              f"expected one of {', '.join(ACCEPTED_AUTH_TYPES)}")
    parts = urlsplit(spec.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"base URL must be an absolute http(s) URL, got {spec.base_url!r}")
    for limit in (spec.rate_limit_per_minute, spec.rate_limit_per_hour, spec.rate_limit_per_day):
        if limit is not None and limit <= 0:
            raise ValidationError("rate limits must be positive")
    monthly_budget(spec.config)


def monthly_budget(config: Mapping[str, Any] | None) -> Decimal | None:
    """``config.budget.monthly`` as a Decimal (None when unset). Raises ValidationError
    for a value that is not a non-negative number."""
    budget = ((config or {}).get("budget") or {})
    if not isinstance(budget, Mapping):
        raise ValidationError("config.budget must be an object like {\"monthly\": 50}")
    value = budget.get("monthly")
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal(-1)
    if isinstance(value, bool) or not amount.is_finite() or amount < 0:
        raise ValidationError(f"config.budget.monthly must be a non-negative number, "
                              f"got {value!r}")
    return amount


def create(session: Session, spec: IntegrationSpec) -> Integration:
    """Register an integration. Raises ValidationError, Conflict (name taken), NotFound
    (unknown fallback)."""
    auth_type, config = unalias_auth(spec.auth_type, spec.config)
    spec = replace(spec, auth_type=auth_type, config=config)
    _validate(spec)
    limits = _default_limits(spec.adapter)
    row = Integration(
        tenant_id=spec.tenant_id, name=spec.name, adapter=spec.adapter, base_url=spec.base_url,
        auth_type=spec.auth_type, config=spec.config or {},
        rate_limit_per_minute=spec.rate_limit_per_minute or limits.get("per_minute"),
        rate_limit_per_hour=spec.rate_limit_per_hour or limits.get("per_hour"),
        rate_limit_per_day=spec.rate_limit_per_day or limits.get("per_day"),
        priority=spec.priority, cost_per_call=spec.cost_per_call,
    )
    record_adapter_version(row)
    if spec.fallback:
        row.fallback_integration_id = get(session, spec.tenant_id, spec.fallback).id
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"integration {spec.name!r} already exists for tenant "
                       f"{spec.tenant_id!r}") from None
    return row


def _default_limits(adapter: str) -> Mapping[str, int]:
    """The adapter's documented quotas (seed 001: Sheets 100/min, geocoding 50/min),
    given to a new integration whose operator set none."""
    found = adapters.registry().get(adapter)
    return found.default_limits if found is not None else {}


def register(services: Services, spec: IntegrationSpec) -> Integration:
    """:func:`create` in its own transaction, then announce ``integration.service.registered``.

    The base URL must be a destination calls may reach: SSRFRefused for a private,
    loopback or link-local address unless ``HUB_ALLOW_PRIVATE_NETWORKS`` (every call
    would be refused, and beat would health-check it forever), RetryableError when
    its name does not resolve right now. Raises what :func:`create` raises too;
    nothing is announced for a refused spec.
    """
    _validate(spec)
    http.check_url(spec.base_url, services.settings)
    with services.sessions() as session, session.begin():
        row = create(session, spec)
        on_commit(session, lambda: events.publish(
            services.events, "service.registered", spec.tenant_id,
            {"integration": spec.name, "adapter": spec.adapter, "id": str(row.id)}))
    return row


def record_adapter_version(row: Integration) -> None:
    """Record the installed adapter's version and param schemas on ``row`` (at creation,
    on a change of adapter, and when an operator accepts an upgrade)."""
    adapter = adapters.get(row.adapter)
    row.adapter_version = adapter.version
    row.adapter_schema = versions.snapshot(adapter)


def adapter_compatibility(row: Integration) -> versions.Compatibility:
    """How ``row``'s recorded adapter version compares with the installed adapter."""
    return versions.check(adapters.registry().get(row.adapter), row.adapter_version,
                          row.adapter_schema)


def get(session: Session, tenant_id: str, name: str, *, lock: bool = False) -> Integration:
    """The tenant's integration called ``name``, active or disabled (a deleted one is
    gone for every caller). Raises NotFound."""
    query = select(Integration).where(Integration.tenant_id == tenant_id,
                                      Integration.name == name,
                                      Integration.status != "deleted")
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"no integration {name!r} for tenant {tenant_id!r}")
    return row


def get_by_id(session: Session, tenant_id: str, integration_id: uuid.UUID) -> Integration:
    row = session.get(Integration, integration_id)
    if row is None or row.tenant_id != tenant_id or row.status == "deleted":
        raise NotFound(f"no integration {integration_id} for tenant {tenant_id!r}")
    return row


def get_active(session: Session, tenant_id: str, name: str) -> Integration:
    """Like :func:`get`, but raises IntegrationDisabled for a disabled integration."""
    row = get(session, tenant_id, name)
    if row.status != "active":
        raise IntegrationDisabled(f"integration {name!r} of tenant {tenant_id!r} is disabled")
    return row


#: Seconds a worker uses a resolved integration without asking PostgreSQL again. A
#: change made through the ORM applies at once (:mod:`hub.platform.changes`); this
#: bounds how long one made behind the hub's back (raw SQL), or announced while
#: Redis was down, goes unseen.
RESOLVED_TTL = 5.0


class ResolvedCache:
    """Active integrations of this process, by (tenant, name), with the generation of
    the tenant's integrations they were loaded under. Shared by a worker's threads."""

    def __init__(self, ttl: float = RESOLVED_TTL) -> None:
        self.ttl = ttl
        self._rows: dict[tuple[str, str], tuple[Integration, str | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, name: str, generation: str | None) -> Integration | None:
        entry = self._rows.get((tenant_id, name))
        if entry is None:
            return None
        row, loaded_under, loaded_at = entry
        if loaded_under != generation or time.monotonic() - loaded_at > self.ttl:
            return None
        return row

    def peek(self, tenant_id: str, name: str) -> Integration | None:
        """The row kept for (tenant, name), current or not (its id names the keys a
        call pre-reads: :mod:`hub.calls.preflight`)."""
        entry = self._rows.get((tenant_id, name))
        return entry[0] if entry is not None else None

    def put(self, row: Integration, generation: str | None) -> None:
        with self._lock:
            self._rows[(row.tenant_id, row.name)] = (row, generation, time.monotonic())


_UNREAD = object()


def cached_row(services: Services, tenant_id: str, name: str) -> Integration | None:
    """The row this process keeps for (tenant, name), current or not; None if none."""
    return services.shared("resolved-integrations", ResolvedCache).peek(tenant_id, name)


def resolve_active(services: Services, tenant_id: str, name: str,
                   generation: Any = _UNREAD) -> Integration:
    """:func:`get_active`, served from this process's memory while the tenant's
    integrations have not changed (one Redis GET instead of a PostgreSQL session;
    none when the caller read ``generation`` already, :mod:`hub.calls.preflight`).

    The row is a detached snapshot shared between threads: read it, never change
    it. Raises NotFound and IntegrationDisabled as :func:`get_active` does (those
    answers are not cached).
    """
    if generation is _UNREAD:
        generation = _generation(services, tenant_id)
    cache = services.shared("resolved-integrations", ResolvedCache)
    row = cache.get(tenant_id, name, generation)
    if row is not None:
        return row
    with services.sessions() as session:
        row = get_active(session, tenant_id, name)
    cache.put(row, generation)
    return row


def _generation(services: Services, tenant_id: str) -> str | None:
    try:
        value = services.redis.get(changes.generation_key(services.settings, tenant_id))
    except (redis.RedisError, OSError):
        return "unavailable"  # fail open: copies expire after RESOLVED_TTL
    return str(value) if value is not None else None


def list_for_tenant(session: Session, tenant_id: str | None = None) -> list[Integration]:
    """Integrations of one tenant (or of every tenant, for operators), by tenant and name;
    deleted ones are left out."""
    query = select(Integration).where(Integration.status != "deleted") \
        .order_by(Integration.tenant_id, Integration.name)
    if tenant_id is not None:
        query = query.where(Integration.tenant_id == tenant_id)
    return list(session.scalars(query))


def update(session: Session, tenant_id: str, name: str, **changes: Any) -> Integration:
    """Change mutable fields of an integration; ``fallback`` is another integration's
    name (None removes it). Raises NotFound (integration or fallback), ValidationError."""
    unknown = set(changes) - MUTABLE_FIELDS - {"fallback"}
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    row = get(session, tenant_id, name, lock=True)
    if changes.get("auth_type") in AUTH_TYPE_ALIASES:
        changes["auth_type"], changes["config"] = unalias_auth(
            changes["auth_type"], changes.get("config", row.config))
    if "fallback" in changes:
        row.fallback_integration_id = _fallback_id(session, row, changes.pop("fallback"))
    merged = IntegrationSpec(
        tenant_id=tenant_id, name=name,
        **{f: changes.get(f, getattr(row, f)) for f in (
            "adapter", "base_url", "auth_type", "config", "rate_limit_per_minute",
            "rate_limit_per_hour", "rate_limit_per_day", "priority", "cost_per_call")},
    )
    _validate(merged)
    adapter_changed = changes.get("adapter", row.adapter) != row.adapter
    for field_name, value in changes.items():
        setattr(row, field_name, value)
    if adapter_changed:
        record_adapter_version(row)
    return row


def accept_adapter_version(session: Session, tenant_id: str, name: str) -> Integration:
    """Record the installed adapter's version and schemas on the integration, after an
    operator checked a flagged change (``hub integrations upgrade``). Raises NotFound."""
    row = get(session, tenant_id, name, lock=True)
    record_adapter_version(row)
    return row


def retire(session: Session, tenant_id: str, name: str) -> Integration:
    """Delete an integration: its row stays (status ``deleted``, credentials erased) so
    audit rows, usage and dead letters keep naming it; its name is free again. Its
    cached answers and stored idempotent results go; integrations that fell back to
    it lose their fallback. Raises NotFound."""
    row = get(session, tenant_id, name, lock=True)
    row.status, row.deleted_at, row.credentials = "deleted", utcnow(), None
    session.execute(sql_update(Integration).where(Integration.fallback_integration_id == row.id)
                    .values(fallback_integration_id=None))
    session.execute(delete(CacheEntry).where(CacheEntry.integration_id == row.id))
    session.execute(delete(CallResult).where(CallResult.integration_id == row.id))
    session.flush()
    return row


def change(services: Services, tenant_id: str, name: str, **changes: Any) -> Integration:
    """:func:`update` in its own transaction, refusing a new base URL calls may not
    reach, as :func:`register` does. Raises NotFound, ValidationError, SSRFRefused,
    RetryableError."""
    if "base_url" in changes:
        http.check_url(str(changes["base_url"]), services.settings)
    with services.sessions() as session, session.begin():
        return update(session, tenant_id, name, **changes)


def _fallback_id(session: Session, row: Integration, fallback: str | None) -> uuid.UUID | None:
    if fallback is None:
        return None
    if fallback == row.name:
        raise ValidationError("an integration cannot be its own fallback")
    return get(session, row.tenant_id, fallback).id


def set_status(session: Session, tenant_id: str, name: str, status: str) -> Integration:
    """Enable or disable an integration. Raises NotFound, ValidationError."""
    if status not in ("active", "disabled"):
        raise ValidationError(f"unknown status {status!r}")
    row = get(session, tenant_id, name, lock=True)
    row.status = status
    return row


def set_credentials(session: Session, vault: Vault, tenant_id: str, name: str,
                    credentials: dict[str, Any]) -> Integration:
    """Store ``credentials`` (a JSON object of secrets) encrypted, after checking its keys
    against the integration's auth type. Raises NotFound, ValidationError."""
    # Imported here: the refresh-token strategy imports this module to store rotations.
    from hub.calls.auth import check_credentials

    row = get(session, tenant_id, name, lock=True)
    if not isinstance(credentials, dict) or not credentials:
        raise ValidationError("credentials must be a non-empty JSON object")
    check_credentials(row, credentials)
    row.credentials = vault.encrypt(credentials)
    return row


class _DecryptedCredentials:
    """Decrypted credentials by integration row *object*: a resolved row is shared by
    a worker's calls until the integration changes (:class:`ResolvedCache`), so its
    credentials are decrypted once per change, not once per call. Weak keys: the
    entry goes with the row once no call holds it (a change replaced it). Values are
    :class:`Secret` (they never print) and never leave this process."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary[Integration, Secret[dict[str, Any]]] = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, vault: Vault, row: Integration) -> Secret[dict[str, Any]]:
        with self._lock:
            found = self._values.get(row)
        if found is None:
            found = credentials_of(vault, row)
            with self._lock:
                self._values[row] = found
        return found


def cached_credentials(services: Services, row: Integration) -> Secret[dict[str, Any]]:
    """:func:`credentials_of` ``row``, decrypted once per row object in this process."""
    return services.shared("decrypted-credentials", _DecryptedCredentials).get(
        services.vault, row)


def credentials_of(vault: Vault, row: Integration) -> Secret[dict[str, Any]]:
    """Decrypted credentials of ``row`` (empty if none), wrapped so they never print.

    Raises VaultError naming the integration when no key opens them.
    """
    if not row.credentials:
        return Secret({})
    return Secret(vault.decrypt(row.credentials,
                                owner=f"integration {row.tenant_id}/{row.name}"))


def describe(row: Integration) -> dict[str, Any]:
    """A JSON-able view of an integration for operators; never includes credentials."""
    return {
        "id": str(row.id), "tenant": row.tenant_id, "name": row.name, "adapter": row.adapter,
        "adapter_version": row.adapter_version,
        "adapter_compat": adapter_compatibility(row).as_dict(),
        "base_url": row.base_url, "auth_type": row.auth_type, "config": row.config,
        "status": row.status, "health_status": row.health_status,
        "has_credentials": bool(row.credentials),
        "rate_limits": {"per_minute": row.rate_limit_per_minute,
                        "per_hour": row.rate_limit_per_hour,
                        "per_day": row.rate_limit_per_day},
        "priority": row.priority, "cost_per_call": str(row.cost_per_call),
        "fallback_integration_id": (str(row.fallback_integration_id)
                                    if row.fallback_integration_id else None),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "connected_at": row.connected_at.isoformat() if row.connected_at else None,
    }
