"""Two-layer response cache for cacheable reads: Redis (L1) and PostgreSQL (L2).

A cached answer is found by a key derived from the canonical JSON of
``{tenant, integration id, operation, params}`` (sorted keys, no whitespace,
sha256), so the same params in any order hit the same entry and two tenants
never share one. L1 is a Redis string with a TTL; L2 is a ``cache_entries`` row
(upserted), which survives a Redis flush and repopulates L1 on its next hit.

The provider's caching headers are honoured (RFC 9111): ``Cache-Control:
no-store`` is never stored, ``s-maxage``/``max-age`` shorten the operation's TTL,
``no-cache`` stores only for revalidation. An expired entry with an ETag is
kept: ``lookup(..., allow_stale=True)`` returns it with ``fresh=False`` so the
pipeline sends ``If-None-Match``; on a 304 :func:`refresh` extends it without a
new body.

Failures of the cache never fail a call (it is an optimisation): Redis errors
fall back to L2 or a miss, PostgreSQL errors to a miss, each with a log line.

A read in flight while a write invalidates must not put its older answer back
(issue 11): every invalidation first bumps a *generation* counter in Redis (the
integration's, or the tenant's for one across its integrations); the pipeline
reads :func:`generation` before the provider request, and :func:`store` keeps
the answer only if the generation is unchanged after writing it (else it
withdraws it). An answer the provider gave before the write was applied is thus
either removed by the invalidation or withdrawn by its own store. A generation
that cannot be read (Redis down) stores as before, unchecked.

Hit/miss counters per tenant and namespace (integration/operation) are Redis
hashes read by :func:`stats` (``hub cache stats``); :func:`invalidate` drops
entries by key, prefix or param value from both layers (``hub cache
invalidate``); :func:`invalidate_prefix` is the webhook handlers' shorthand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import redis
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from hub.calls import integrations
from hub.platform.models import CacheEntry, Integration
from hub.platform.redaction import redact_json
from hub.platform.services import Services

log = logging.getLogger(__name__)

#: How long an expired entry with an ETag is kept for revalidation.
STALE_KEEP_SECONDS = 86400
COUNTERS = ("hits", "misses", "stale", "stores", "revalidated")


class _IntegrationLike(Protocol):
    @property
    def id(self) -> Any: ...

    @property
    def tenant_id(self) -> str: ...


@dataclass(frozen=True)
class CachedResponse:
    """A cached provider answer. ``fresh`` is False only for stale-with-ETag entries
    returned by ``lookup(..., allow_stale=True)``."""

    key: str
    status_code: int
    data: Any
    etag: str | None
    expires_at: float
    fresh: bool
    layer: str  # "redis" or "database"


# --- keys ----------------------------------------------------------------------------------

def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str)


def cache_key(tenant: str, integration_id: Any, operation: str,
              params: Mapping[str, Any] | None) -> str:
    """The sha256 hex key of one call (tenant, integration id, operation, params)."""
    document = {"tenant": tenant, "integration": str(integration_id), "operation": operation,
                "params": params or {}}
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def _part(text: str) -> str:
    """One segment of an L1 key, percent-encoded: a tenant called ``ta:eu`` becomes
    ``ta%3Aeu``, so no segment holds the ``:`` separator or a glob character and a
    SCAN pattern for tenant ``ta`` can never match tenant ``ta:eu``'s keys."""
    return quote(text, safe="")


def _redis_key(services: Services, tenant: str, integration_id: Any, operation: str,
               key: str) -> str:
    return services.settings.redis_key("cache", *map(_part, (tenant, str(integration_id),
                                                             operation, key)))


def _generation_keys(services: Services, tenant: str, integration_id: Any) -> list[str]:
    return [services.settings.redis_key("cache-gen", _part(tenant)),
            services.settings.redis_key("cache-gen", _part(tenant), _part(str(integration_id)))]


def generation(services: Services, integration: _IntegrationLike) -> str | None:
    """The cache generation of ``integration`` (its tenant's and its own invalidation
    counters), to give :func:`store` for an answer requested after this read; None
    when Redis cannot say (then the store is unchecked)."""
    try:
        values = services.redis.mget(_generation_keys(services, integration.tenant_id,
                                                      integration.id))
    except (redis.RedisError, OSError):
        log.warning("cache generation unavailable; storing unchecked", exc_info=True)
        return None
    return ":".join(str(int(v or 0)) for v in values)


def _bump_generation(services: Services, tenant: str, integration_id: Any) -> None:
    key = _generation_keys(services, tenant, integration_id)[1 if integration_id else 0]
    try:
        services.redis.incr(key)
    except (redis.RedisError, OSError):
        log.warning("cache generation not bumped; a read in flight may store an older "
                    "answer", exc_info=True)


def _stats_key(services: Services, tenant: str) -> str:
    return services.settings.redis_key("cache-stats", tenant)


# --- caching headers -----------------------------------------------------------------------

def _directives(headers: Mapping[str, str] | None) -> dict[str, str | None]:
    if not headers:
        return {}
    value = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    out: dict[str, str | None] = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip('"') if arg else None
    return out


def effective_ttl(headers: Mapping[str, str] | None, ttl: int) -> int | None:
    """Seconds to keep an answer given the operation's ``ttl`` and the provider's
    Cache-Control: None = do not store (``no-store``, ``ttl`` <= 0); 0 = store only
    for revalidation (``no-cache``, ``max-age=0``); else min(ttl, s-maxage/max-age)."""
    if ttl <= 0:
        return None
    directives = _directives(headers)
    if "no-store" in directives:
        return None
    if "no-cache" in directives:
        return 0
    for name in ("s-maxage", "max-age"):  # s-maxage wins in a shared cache (RFC 9111 §5.2.2.10)
        raw = directives.get(name)
        if raw is not None and raw.isdigit():
            return min(ttl, int(raw))
    return ttl


def _etag(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    return next((v for k, v in headers.items() if k.lower() == "etag"), None) or None


# --- lookup ----------------------------------------------------------------------------------

def lookup(services: Services, integration: _IntegrationLike, operation: str,
           params: Mapping[str, Any] | None, *, allow_stale: bool = False
           ) -> CachedResponse | None:
    """The cached answer of this call: L1, else L2 (which repopulates L1), else None.

    Only fresh entries are returned, unless ``allow_stale``: then an expired entry
    that has an ETag comes back with ``fresh=False`` for revalidation. Counts a
    hit, miss or stale for ``hub cache stats``. Never raises for cache failures.
    """
    tenant, key = integration.tenant_id, cache_key(integration.tenant_id, integration.id,
                                                   operation, params)
    entry = _from_redis(services, integration, operation, key)
    if entry is None:
        entry = _from_database(services, integration, operation, key)
    now = time.time()
    if entry is not None and entry.expires_at > now:
        _count(services, tenant, integration.id, operation, "hits")
        return entry
    if entry is not None and entry.etag and allow_stale:
        _count(services, tenant, integration.id, operation, "stale")
        return CachedResponse(**{**entry.__dict__, "fresh": False})
    _count(services, tenant, integration.id, operation, "misses")
    return None


def _decode(key: str, raw: str | bytes, layer: str) -> CachedResponse:
    doc = json.loads(raw)
    return CachedResponse(key=key, status_code=int(doc["status_code"]), data=doc["data"],
                          etag=doc.get("etag"), expires_at=float(doc["expires_at"]),
                          fresh=True, layer=layer)


def _from_redis(services: Services, integration: _IntegrationLike, operation: str,
                key: str) -> CachedResponse | None:
    try:
        raw = services.redis.get(_redis_key(services, integration.tenant_id, integration.id,
                                            operation, key))
    except (redis.RedisError, OSError):
        log.warning("cache L1 (Redis) unavailable; trying L2", exc_info=True)
        return None
    return _decode(key, raw, "redis") if raw else None


def _from_database(services: Services, integration: _IntegrationLike, operation: str,
                   key: str) -> CachedResponse | None:
    try:
        with services.sessions() as session, session.begin():
            now = datetime.now(UTC)
            row = session.execute(
                update(CacheEntry)
                .where(CacheEntry.tenant_id == integration.tenant_id,
                       CacheEntry.key_hash == key,
                       or_(CacheEntry.expires_at > now, CacheEntry.etag.is_not(None)))
                .values(hit_count=CacheEntry.hit_count
                        + case((CacheEntry.expires_at > now, 1), else_=0))
                .returning(CacheEntry.response, CacheEntry.etag, CacheEntry.expires_at)
            ).one_or_none()
    except SQLAlchemyError:
        log.warning("cache L2 (PostgreSQL) unavailable; treating as a miss", exc_info=True)
        return None
    if row is None:
        return None
    entry = CachedResponse(key=key, status_code=int(row.response["status_code"]),
                           data=row.response["data"], etag=row.etag,
                           expires_at=row.expires_at.timestamp(), fresh=True, layer="database")
    _to_redis(services, integration, operation, entry)
    return entry


# --- store and refresh --------------------------------------------------------------------

def store(services: Services, integration: _IntegrationLike, operation: str,
          params: Mapping[str, Any] | None, *, status_code: int, data: Any, ttl: int,
          headers: Mapping[str, str] | None = None, etag: str | None = None,
          generation: str | None = None) -> str | None:
    """Cache a provider answer in both layers for ``effective_ttl(headers, ttl)``
    seconds; returns the key, or None when not stored (no-store, ttl 0, an
    uncacheable no-cache answer without ETag, or ``generation``, read by
    :func:`generation` before the request, no longer current: an invalidation came
    in between). Never raises for cache failures."""
    seconds = effective_ttl(headers, ttl)
    etag = etag or _etag(headers)
    if seconds is None or (seconds == 0 and not etag) or _outdated(services, integration,
                                                                   generation):
        return None
    key = cache_key(integration.tenant_id, integration.id, operation, params)
    entry = CachedResponse(key=key, status_code=status_code, data=data, etag=etag,
                           expires_at=time.time() + seconds, fresh=True, layer="redis")
    return key if _keep(services, integration, operation, entry, params, generation,
                        "stores") else None


def _outdated(services: Services, integration: _IntegrationLike,
              generation_read: str | None) -> bool:
    return generation_read is not None and \
        generation(services, integration) not in (generation_read, None)


def _keep(services: Services, integration: _IntegrationLike, operation: str,
          entry: CachedResponse, params: Mapping[str, Any] | None,
          generation_read: str | None, counter: str) -> bool:
    """Write ``entry`` to both layers, then withdraw it if an invalidation bumped the
    generation meanwhile (it may have run before our write reached either layer)."""
    _to_database(services, integration, operation, entry, params)
    _to_redis(services, integration, operation, entry)
    if _outdated(services, integration, generation_read):
        _withdraw(services, integration, operation, entry.key)
        return False
    _count(services, integration.tenant_id, integration.id, operation, counter)
    return True


def _withdraw(services: Services, integration: _IntegrationLike, operation: str,
              key: str) -> None:
    try:
        with services.sessions() as session, session.begin():
            session.execute(delete(CacheEntry).where(
                CacheEntry.tenant_id == integration.tenant_id, CacheEntry.key_hash == key))
    except SQLAlchemyError:
        log.warning("cache L2 (PostgreSQL) unavailable; outdated entry left", exc_info=True)
    _delete_redis(services, [_redis_key(services, integration.tenant_id, integration.id,
                                        operation, key)])


def refresh(services: Services, integration: _IntegrationLike, operation: str,
            params: Mapping[str, Any] | None, *, ttl: int,
            headers: Mapping[str, str] | None = None,
            generation: str | None = None) -> CachedResponse | None:
    """After a 304 Not Modified: make the cached entry fresh again for
    ``effective_ttl(headers, ttl)`` seconds, keeping its body (and taking a new
    ETag if the 304 carries one). Returns the refreshed entry, or None when there
    is none any more (or the 304 said no-store: then the entry is dropped; or an
    invalidation came after ``generation``, as in :func:`store`)."""
    key = cache_key(integration.tenant_id, integration.id, operation, params)
    current = _from_redis(services, integration, operation, key) \
        or _from_database(services, integration, operation, key)
    if current is None:
        return None
    seconds = effective_ttl(headers, ttl)
    if seconds is None:
        invalidate(services, integration.tenant_id, integration.id, operation, key=key)
        return None
    entry = CachedResponse(key=key, status_code=current.status_code, data=current.data,
                           etag=_etag(headers) or current.etag,
                           expires_at=time.time() + seconds, fresh=True, layer=current.layer)
    if not _keep(services, integration, operation, entry, params, generation, "revalidated"):
        return None
    return entry


def _keep_seconds(entry: CachedResponse) -> int:
    remaining = max(entry.expires_at - time.time(), 0)
    if entry.etag:
        remaining += STALE_KEEP_SECONDS
    return max(int(remaining * 1000), 1)


def _to_redis(services: Services, integration: _IntegrationLike, operation: str,
              entry: CachedResponse) -> None:
    doc = {"status_code": entry.status_code, "data": entry.data, "etag": entry.etag,
           "expires_at": entry.expires_at}
    try:
        services.redis.set(_redis_key(services, integration.tenant_id, integration.id,
                                      operation, entry.key),
                           canonical_json(doc), px=_keep_seconds(entry))
    except (redis.RedisError, OSError):
        log.warning("cache L1 (Redis) unavailable; stored in L2 only", exc_info=True)


def _to_database(services: Services, integration: _IntegrationLike, operation: str,
                 entry: CachedResponse, params: Mapping[str, Any] | None) -> None:
    expires_at = datetime.fromtimestamp(entry.expires_at, UTC)
    values = {"tenant_id": integration.tenant_id, "key_hash": entry.key,
              "integration_id": _uuid(integration.id), "operation": operation,
              "response": {"status_code": entry.status_code, "data": entry.data,
                           "params": redact_json(params or {})},
              "etag": entry.etag, "expires_at": expires_at}
    statement = insert(CacheEntry).values(**values).on_conflict_do_update(
        index_elements=["tenant_id", "key_hash"],
        set_={"response": values["response"], "etag": entry.etag, "expires_at": expires_at,
              "updated_at": datetime.now(UTC)})
    try:
        with services.sessions() as session, session.begin():
            session.execute(statement)
    except SQLAlchemyError:
        log.warning("cache L2 (PostgreSQL) unavailable; not stored there", exc_info=True)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# --- counters ----------------------------------------------------------------------------

def _count(services: Services, tenant: str, integration_id: Any, operation: str,
           counter: str) -> None:
    try:
        services.redis.hincrby(_stats_key(services, tenant),
                               f"{integration_id}|{operation}|{counter}", 1)
    except (redis.RedisError, OSError):
        log.warning("cache counters unavailable", exc_info=True)


def stats(services: Services, tenant: str | None = None) -> list[dict[str, Any]]:
    """Counters per tenant and namespace (integration, operation): hits, misses,
    stale, stores, revalidated, hit_rate, plus live L2 entries. Sorted."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    # One tenant's counters are one known key: read it, never a SCAN pattern (a
    # tenant holding a glob character or the separator would match others' keys).
    keys = [_stats_key(services, tenant)] if tenant else \
        services.redis.scan_iter(_stats_key(services, "*"), count=500)
    for stats_key in keys:
        owner = str(stats_key)[len(_stats_key(services, "")):]
        counters: dict[str, str] = services.redis.hgetall(stats_key)  # type: ignore[assignment]
        for field, value in counters.items():
            integration_id, operation, counter = field.rsplit("|", 2)
            row = rows.setdefault((owner, integration_id, operation),
                                  {c: 0 for c in COUNTERS} | {"entries": 0})
            row[counter] = int(value)
    _add_entry_counts(services, tenant, rows)
    return [_stat_row(k, v, _names(services, rows)) for k, v in sorted(rows.items())]


def _add_entry_counts(services: Services, tenant: str | None,
                      rows: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    query = select(CacheEntry.tenant_id, CacheEntry.integration_id, CacheEntry.operation,
                   func.count()).where(CacheEntry.expires_at > datetime.now(UTC)) \
        .group_by(CacheEntry.tenant_id, CacheEntry.integration_id, CacheEntry.operation)
    if tenant:
        query = query.where(CacheEntry.tenant_id == tenant)
    with services.sessions() as session:
        for owner, integration_id, operation, count in session.execute(query):
            row = rows.setdefault((owner, str(integration_id), operation),
                                  {c: 0 for c in COUNTERS} | {"entries": 0})
            row["entries"] = int(count)


def _names(services: Services, rows: Mapping[tuple[str, str, str], Any]) -> dict[str, str]:
    ids = {_uuid(i) for _, i, _ in rows if _is_uuid(i)}
    if not ids:
        return {}
    with services.sessions() as session:
        found = session.execute(select(Integration.id, Integration.name)
                                .where(Integration.id.in_(ids)))
        return {str(i): n for i, n in found}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _stat_row(key: tuple[str, str, str], counters: dict[str, Any],
              names: Mapping[str, str]) -> dict[str, Any]:
    tenant, integration_id, operation = key
    lookups = counters["hits"] + counters["misses"] + counters["stale"]
    return {"tenant": tenant, "integration": names.get(integration_id, integration_id),
            "integration_id": integration_id, "operation": operation, **counters,
            "hit_rate": round(counters["hits"] / lookups, 4) if lookups else None}


# --- invalidation ------------------------------------------------------------------------

def invalidate(services: Services, tenant: str, integration: Any = None,
               operation: str | None = None, *, key: str | None = None,
               params: Mapping[str, Any] | None = None, param_value: Any = None,
               sweep: bool = True) -> dict[str, int]:
    """Drop cached answers of ``tenant`` from both layers; returns
    ``{"redis": n, "database": m}`` entries removed.

    Selects, within the tenant:

    - ``key``: that one entry (the hex key shown by stats and logs);
    - ``integration`` + ``operation`` + ``params``: the entry of exactly that call;
    - ``param_value``: entries one of whose top-level params equals it (e.g. a
      transaction id named by a webhook), narrowed by integration/operation;
    - else everything under tenant [/ integration] [/ operation].

    ``integration`` is an id or a name (resolved within the tenant; NotFound if
    unknown). L1 keys are found through the deleted L2 rows; ``sweep`` also scans
    Redis for L1 entries whose L2 write had failed (thorough, O(keyspace): the
    CLI sweeps, webhook handlers need not).
    """
    integration_id = _integration_id(services, tenant, integration) if integration else None
    if key is None and params is not None:
        if integration_id is None or not operation:
            raise ValueError("params need an integration and an operation")
        key = cache_key(tenant, integration_id, operation, params)
    # Before deleting: a read in flight that stores after our delete sees the new
    # generation and withdraws its answer (see the module docstring).
    _bump_generation(services, tenant, integration_id)
    deleted = _invalidate_database(services, tenant, integration_id, operation, key,
                                   param_value)
    redis_keys = [_redis_key(services, tenant, i, o, k) for i, o, k in deleted]
    removed = _delete_redis(services, redis_keys)
    if sweep and param_value is None:
        removed += _sweep_redis(services, tenant, integration_id, operation, key)
    return {"redis": removed, "database": len(deleted)}


def invalidate_prefix(services: Services, tenant: str, prefix: str) -> dict[str, int]:
    """Webhook handlers' entry point: ``prefix`` is ``"<operation>"`` or
    ``"<operation>:<param value>"`` (seed 003: ``get_transaction_status:TXN-1``),
    across all the tenant's integrations. See :func:`invalidate`."""
    operation, _, value = prefix.partition(":")
    return invalidate(services, tenant, operation=operation or None,
                      param_value=value if value else None, sweep=False)


def _integration_id(services: Services, tenant: str, integration: Any) -> uuid.UUID:
    if isinstance(integration, uuid.UUID) or _is_uuid(str(integration)):
        return _uuid(integration)
    with services.sessions() as session:
        return integrations.get(session, tenant, str(integration)).id


def _delete_redis(services: Services, keys: list[str]) -> int:
    removed = 0
    try:
        for start in range(0, len(keys), 500):
            removed += int(services.redis.delete(*keys[start:start + 500]))
    except (redis.RedisError, OSError):
        log.warning("cache L1 (Redis) unavailable; invalidated L2 only", exc_info=True)
    return removed


def _sweep_redis(services: Services, tenant: str, integration_id: uuid.UUID | None,
                 operation: str | None, key: str | None) -> int:
    # Every given segment is encoded exactly as _redis_key encodes it: no glob
    # character survives, and "*" never spans a separator inside one segment.
    parts = [_part(tenant), _part(str(integration_id)) if integration_id else "*",
             _part(operation) if operation else "*", _part(key) if key else "*"]
    pattern = services.settings.redis_key("cache", *parts)
    try:
        found = list(services.redis.scan_iter(pattern, count=1000))
    except (redis.RedisError, OSError):
        log.warning("cache L1 (Redis) unavailable; invalidated L2 only", exc_info=True)
        return 0
    return _delete_redis(services, found)


def _invalidate_database(services: Services, tenant: str, integration_id: uuid.UUID | None,
                         operation: str | None, key: str | None,
                         param_value: Any) -> list[tuple[str, str, str]]:
    statement = delete(CacheEntry).where(CacheEntry.tenant_id == tenant)
    if key:
        statement = statement.where(CacheEntry.key_hash == key)
    if integration_id:
        statement = statement.where(CacheEntry.integration_id == integration_id)
    if operation:
        statement = statement.where(CacheEntry.operation == operation)
    if param_value is not None:
        params = func.jsonb_each_text(CacheEntry.response["params"]) \
            .table_valued("key", "value").alias("p")
        statement = statement.where(
            select(1).select_from(params).where(params.c.value == str(param_value)).exists())
    returning = statement.returning(CacheEntry.integration_id, CacheEntry.operation,
                                    CacheEntry.key_hash)
    with services.sessions() as session, session.begin():
        return [(str(i), o, k) for i, o, k in session.execute(returning)]


def expire_before(services: Services, cutoff: datetime, batch: int = 1000) -> int:
    """Delete L2 rows that expired before ``cutoff`` (stale-with-ETag rows are kept
    :data:`STALE_KEEP_SECONDS` by choosing the cutoff), one short batch at a time.
    Returns rows deleted. For the retention job."""
    total = 0
    while True:
        with services.sessions() as session, session.begin():
            ids = select(CacheEntry.id).where(CacheEntry.expires_at < cutoff).limit(batch) \
                .with_for_update(skip_locked=True).scalar_subquery()
            result = session.execute(delete(CacheEntry).where(CacheEntry.id.in_(ids)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch:
            return total


__all__ = ["CachedResponse", "cache_key", "canonical_json", "effective_ttl", "expire_before",
           "generation", "invalidate", "invalidate_prefix", "lookup", "refresh", "stats",
           "store"]
