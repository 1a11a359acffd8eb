"""hub.calls.cache: Redis L1 + PostgreSQL L2, tenant isolation, invalidation, caching headers."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import select

from hub.calls import cache, integrations
from hub.calls.integrations import IntegrationSpec
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import CacheEntry
from hub.platform.services import Services


def make(services, tenant, name="crm"):
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=name, adapter="rest", base_url="http://provider.invalid"))
    with services.sessions() as session:
        row = integrations.get(session, tenant, name)
        session.expunge(row)
        return row


def flush_l1(services, tenant):
    keys = list(services.redis.scan_iter(services.settings.redis_key("cache", tenant, "*")))
    if keys:
        services.redis.delete(*keys)
    return len(keys)


def put(services, row, params, data, ttl=60, headers=None, operation="get"):
    return cache.store(services, row, operation, params, status_code=200, data=data, ttl=ttl,
                       headers=headers)


def test_key_is_canonical_and_tenant_scoped():
    a = cache.cache_key("t1", "i", "get", {"b": 1, "a": [1, {"y": 2, "x": 1}]})
    b = cache.cache_key("t1", "i", "get", {"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a == b and len(a) == 64
    assert cache.cache_key("t2", "i", "get", {"b": 1, "a": [1, {"y": 2, "x": 1}]}) != a
    assert cache.cache_key("t1", "i", "list", {"b": 1, "a": [1, {"y": 2, "x": 1}]}) != a


def test_l1_hit_then_l2_hit_after_l1_flush(services, tenant):
    row = make(services, tenant)
    params = {"id": 7}
    assert cache.lookup(services, row, "get", params) is None
    key = put(services, row, params, {"name": "Ann"})
    hit = cache.lookup(services, row, "get", {"id": 7})
    assert hit.layer == "redis" and hit.data == {"name": "Ann"} and hit.key == key
    assert flush_l1(services, tenant) == 1
    hit = cache.lookup(services, row, "get", params)
    assert hit.layer == "database" and hit.data == {"name": "Ann"} and hit.fresh
    assert cache.lookup(services, row, "get", params).layer == "redis"  # repopulated
    with services.sessions() as session:
        entry = session.scalars(select(CacheEntry).where(CacheEntry.tenant_id == tenant)).one()
    assert entry.hit_count == 1 and entry.key_hash == key and entry.integration_id == row.id
    [stat] = cache.stats(services, tenant)
    assert stat["integration"] == "crm" and stat["operation"] == "get"
    assert (stat["hits"], stat["misses"], stat["stores"], stat["entries"]) == (3, 1, 1, 1)
    assert stat["hit_rate"] == 0.75


def test_tenant_isolation(services, tenant):
    row = make(services, tenant)
    other = make(services, tenant + "-b")
    put(services, row, {"id": 1}, "mine")
    assert cache.lookup(services, other, "get", {"id": 1}) is None
    # Even an integration row claiming the same id but another tenant does not see it.
    forged = type("Forged", (), {"id": row.id, "tenant_id": tenant + "-b"})()
    assert cache.lookup(services, forged, "get", {"id": 1}) is None
    assert cache.stats(services, tenant + "-b")[0]["hits"] == 0


def test_expired_entry_is_a_miss(services, tenant):
    row = make(services, tenant)
    put(services, row, {"id": 1}, "soon gone", ttl=1)
    assert cache.lookup(services, row, "get", {"id": 1}) is not None
    deadline = time.monotonic() + 5
    while cache.lookup(services, row, "get", {"id": 1}) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    flush_l1(services, tenant)
    assert cache.lookup(services, row, "get", {"id": 1}) is None  # L2 row expired too


def test_invalidate_by_prefix_key_and_params(services, tenant):
    row = make(services, tenant)
    crm2 = make(services, tenant, "billing")
    for i in range(3):
        put(services, row, {"id": i}, i)
    put(services, row, {"id": 0}, "list", operation="list")
    put(services, crm2, {"id": 0}, "other")

    removed = cache.invalidate(services, tenant, "crm", "get", params={"id": 0})
    assert removed == {"redis": 1, "database": 1}
    key = cache.cache_key(tenant, row.id, "get", {"id": 1})
    assert cache.invalidate(services, tenant, key=key) == {"redis": 1, "database": 1}
    assert cache.invalidate(services, tenant, row.id, "get") == {"redis": 1, "database": 1}
    assert cache.lookup(services, row, "list", {"id": 0}).data == "list"
    assert cache.invalidate(services, tenant, "crm") == {"redis": 1, "database": 1}
    assert cache.lookup(services, crm2, "get", {"id": 0}).data == "other"
    assert cache.invalidate(services, tenant) == {"redis": 1, "database": 1}
    assert cache.lookup(services, crm2, "get", {"id": 0}) is None


def test_invalidate_never_touches_another_tenant(services, tenant):
    row = make(services, tenant)
    other = make(services, tenant + "x")  # a tenant whose name starts with ours
    put(services, row, {"id": 1}, "a")
    put(services, other, {"id": 1}, "b")
    cache.invalidate(services, tenant)
    assert cache.lookup(services, other, "get", {"id": 1}).data == "b"


@pytest.mark.parametrize("headers, ttl, expected", [
    ({"Cache-Control": "no-store"}, 60, None),
    ({"cache-control": "private, max-age=10"}, 60, 10),
    ({"Cache-Control": "max-age=600"}, 60, 60),
    ({"Cache-Control": "max-age=600, s-maxage=5"}, 60, 5),
    ({"Cache-Control": "no-cache"}, 60, 0),
    ({}, 60, 60),
    ({}, 0, None),
])
def test_effective_ttl(headers, ttl, expected):
    assert cache.effective_ttl(headers, ttl) == expected


def test_no_store_is_never_cached(services, tenant):
    row = make(services, tenant)
    assert put(services, row, {"id": 1}, "x", headers={"Cache-Control": "no-store"}) is None
    assert cache.lookup(services, row, "get", {"id": 1}) is None
    with services.sessions() as session:
        assert session.scalars(select(CacheEntry).where(CacheEntry.tenant_id == tenant)).all() \
            == []


def test_stale_entry_with_etag_is_revalidated_by_refresh(services, tenant):
    row = make(services, tenant)
    params = {"id": 1}
    put(services, row, params, {"v": 1}, headers={"ETag": '"v1"', "Cache-Control": "no-cache"})
    assert cache.lookup(services, row, "get", params) is None  # not fresh: not served
    stale = cache.lookup(services, row, "get", params, allow_stale=True)
    assert stale.fresh is False and stale.etag == '"v1"' and stale.data == {"v": 1}

    refreshed = cache.refresh(services, row, "get", params, ttl=60, headers={"ETag": '"v1"'})
    assert refreshed.fresh and refreshed.data == {"v": 1}
    hit = cache.lookup(services, row, "get", params)
    assert hit.data == {"v": 1} and hit.expires_at > time.time() + 50
    flush_l1(services, tenant)  # the refresh reached L2 too
    assert cache.lookup(services, row, "get", params).expires_at > time.time() + 50
    assert cache.stats(services, tenant)[0]["revalidated"] == 1


def test_refresh_without_entry_returns_none(services, tenant):
    row = make(services, tenant)
    assert cache.refresh(services, row, "get", {"id": 404}, ttl=60) is None


def test_redis_down_falls_back_to_l2(services, tenant):
    row = make(services, tenant)
    put(services, row, {"id": 1}, "durable")
    # Same database, a Redis that does not answer (nothing listens on port 1).
    down = Services(dataclasses.replace(services.settings, redis_url="redis://127.0.0.1:1/0"),
                    RecordingDispatcher())
    try:
        hit = cache.lookup(down, row, "get", {"id": 1})
        assert hit.layer == "database" and hit.data == "durable"
        assert cache.lookup(down, row, "get", {"id": 2}) is None
    finally:
        down.close()


def test_invalidate_prefix_by_operation_and_param_value(services, tenant):
    # Seed 003: a transaction_updated webhook drops get_transaction_status:<id>.
    row = make(services, tenant)
    billing = make(services, tenant, "billing")
    put(services, row, {"transaction_id": "TXN-1"}, "t1", operation="get_transaction_status")
    put(services, row, {"transaction_id": "TXN-2"}, "t2", operation="get_transaction_status")
    put(services, billing, {"transaction_id": "TXN-1", "expand": True}, "b1",
        operation="get_transaction_status")
    put(services, row, {"transaction_id": "TXN-1"}, "h", operation="get_history")

    removed = cache.invalidate_prefix(services, tenant, "get_transaction_status:TXN-1")
    assert removed == {"redis": 2, "database": 2}
    assert cache.lookup(services, row, "get_transaction_status", {"transaction_id": "TXN-1"}) \
        is None
    assert cache.lookup(services, billing, "get_transaction_status",
                        {"transaction_id": "TXN-1", "expand": True}) is None
    assert cache.lookup(services, row, "get_transaction_status",
                        {"transaction_id": "TXN-2"}).data == "t2"
    assert cache.lookup(services, row, "get_history", {"transaction_id": "TXN-1"}).data == "h"
    assert cache.invalidate_prefix(services, tenant, "get_transaction_status") == {
        "redis": 1, "database": 1}
    assert cache.invalidate_prefix(services, tenant + "-other", "get_history") == {
        "redis": 0, "database": 0}


def test_params_kept_in_l2_are_redacted(services, tenant):
    row = make(services, tenant)
    put(services, row, {"id": 1, "access_token": "tok-secret-1"}, "x")
    with services.sessions() as session:
        entry = session.scalars(select(CacheEntry).where(CacheEntry.tenant_id == tenant)).one()
    assert "tok-secret-1" not in str(entry.response)


def test_expire_before_deletes_only_old_rows_in_batches(services, tenant):
    from datetime import UTC, datetime, timedelta

    row = make(services, tenant)
    for i in range(5):
        put(services, row, {"id": i}, i, ttl=1)
    put(services, row, {"id": "keep"}, "keep", ttl=3600)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert cache.expire_before(services, later, batch=2) >= 5
    with services.sessions() as session:
        left = session.scalars(select(CacheEntry.key_hash)
                               .where(CacheEntry.tenant_id == tenant)).all()
    assert left == [cache.cache_key(tenant, row.id, "get", {"id": "keep"})]


def test_an_answer_requested_before_an_invalidation_is_not_stored(services, tenant):
    # Issue 11: a read in flight when a write (or a webhook) invalidates must not put
    # its older answer back. Its generation was read before its request.
    row = make(services, tenant)
    other = make(services, tenant, "erp")
    by_write = cache.generation(services, row)
    cache.invalidate(services, tenant, row.id, param_value="SHEET-1", sweep=False)
    assert cache.store(services, row, "get", {"id": 1}, status_code=200, data="old", ttl=60,
                       generation=by_write) is None
    assert cache.lookup(services, row, "get", {"id": 1}) is None
    # Another integration's invalidation leaves this one's reads alone...
    current = cache.generation(services, row)
    cache.invalidate(services, tenant, other.id, sweep=False)
    assert cache.store(services, row, "get", {"id": 1}, status_code=200, data="new", ttl=60,
                       generation=current) is not None
    # ...but one across the tenant (a webhook handler's) does not.
    by_webhook = cache.generation(services, row)
    cache.invalidate_prefix(services, tenant, "get_transaction_status:TXN-1")
    assert cache.refresh(services, row, "get", {"id": 1}, ttl=60,
                         generation=by_webhook) is None
    assert cache.lookup(services, row, "get", {"id": 1}) is None  # withdrawn, both layers
    with services.sessions() as session:
        assert session.scalars(select(CacheEntry).where(CacheEntry.tenant_id == tenant)).all() \
            == []
