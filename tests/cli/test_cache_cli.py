"""``hub cache stats|invalidate`` against real Redis and PostgreSQL."""

from __future__ import annotations

from hub.calls import cache, integrations
from hub.calls.integrations import IntegrationSpec


def _seed(services, tenant):
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name="crm", adapter="rest", base_url="http://provider.invalid"))
    with services.sessions() as session:
        row = integrations.get(session, tenant, "crm")
        session.expunge(row)
    for i in range(2):
        cache.store(services, row, "get", {"id": i}, status_code=200, data=i, ttl=60)
    cache.store(services, row, "list", {}, status_code=200, data=[], ttl=60)
    cache.lookup(services, row, "get", {"id": 0})
    cache.lookup(services, row, "get", {"id": 9})
    return row


def test_stats_and_invalidate(hub, services, tenant):
    row = _seed(services, tenant)
    code, rows = hub.json("cache", "stats", "--tenant", tenant)
    assert code == 0
    by_op = {r["operation"]: r for r in rows}
    assert by_op["get"]["integration"] == "crm"
    assert (by_op["get"]["hits"], by_op["get"]["misses"], by_op["get"]["entries"]) == (1, 1, 2)
    assert by_op["list"]["entries"] == 1

    table = hub("cache", "stats", "--tenant", tenant)
    assert table.exit_code == 0 and "HIT_RATE" in table.stdout and "crm" in table.stdout

    code, out = hub.json("cache", "invalidate", "--tenant", tenant, "--integration", "crm",
                         "--operation", "get")
    assert code == 0 and out["removed"] == {"redis": 2, "database": 2}
    assert cache.lookup(services, row, "list", {}) is not None

    key = cache.cache_key(tenant, row.id, "list", {})
    text = hub("cache", "invalidate", "--tenant", tenant, "--key", key)
    assert text.exit_code == 0 and "removed 1 cached answer(s)" in text.stdout
    assert cache.lookup(services, row, "list", {}) is None


def test_invalidate_usage_errors(hub, tenant):
    assert hub("cache", "invalidate", "--integration", "crm").exit_code == 2  # no --tenant
    code, out = hub.json("cache", "invalidate", "--tenant", tenant, "--integration", "nope")
    assert code == 1 and out["error"]["code"] == "NOT_FOUND"


def test_invalidating_a_tenant_leaves_a_tenant_whose_name_extends_it(hub, services, tenant):
    # Issue 9 item 14: the sweep's SCAN pattern for tenant "ta" matched "ta:eu" too.
    mine = _seed(services, tenant)
    theirs = _seed(services, f"{tenant}:eu")
    theirs_key = cache._redis_key(services, theirs.tenant_id, theirs.id, "list",
                                  cache.cache_key(theirs.tenant_id, theirs.id, "list", {}))
    assert services.redis.exists(theirs_key)

    code, out = hub.json("cache", "invalidate", "--tenant", tenant)
    assert code == 0 and out["removed"] == {"redis": 3, "database": 3}
    assert cache.lookup(services, mine, "list", {}) is None
    assert services.redis.exists(theirs_key)  # L1 of the other tenant untouched
    served = cache.lookup(services, theirs, "list", {})
    assert served is not None and served.layer == "redis"


def test_a_glob_in_the_key_option_matches_nothing(hub, services, tenant):
    row = _seed(services, tenant)
    code, out = hub.json("cache", "invalidate", "--tenant", tenant, "--key", "*")
    assert code == 0 and out["removed"] == {"redis": 0, "database": 0}
    assert cache.lookup(services, row, "list", {}) is not None
