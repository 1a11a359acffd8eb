"""Cacheable reads through the pipeline: L1 (Redis), L2 (PostgreSQL), caching headers."""

from __future__ import annotations

from hub.calls.pipeline import CallRequest, execute_call
from tests.calls.fake_provider import Reply


def _get(services, tenant, path="/v1/items", **kw):  # type: ignore[no-untyped-def]
    outcome = execute_call(services, CallRequest(tenant, "crm", "get",
                                                 {"path": path, "query": {"page": 1}}, **kw))
    assert outcome.status == "success", outcome.error
    return outcome.result


def test_l1_then_l2_hit_after_an_l1_flush(services, redis_client, settings, tenant, provider,
                                         make_integration):
    make_integration("crm")
    first = _get(services, tenant)
    assert first["cached"] is False and provider.hits("/v1/items") == 1
    second = _get(services, tenant)
    assert second["cached"] is True and second["data"] == first["data"]
    l1_keys = list(redis_client.scan_iter(settings.redis_key("cache", tenant, "*")))
    assert len(l1_keys) == 1
    redis_client.delete(*l1_keys)  # flush L1: the answer survives in PostgreSQL
    third = _get(services, tenant)
    assert third["cached"] is True and third["data"] == first["data"]
    assert provider.hits("/v1/items") == 1
    assert list(redis_client.scan_iter(settings.redis_key("cache", tenant, "*")))  # L1 refilled
    bypass = _get(services, tenant, cache=False)
    assert bypass["cached"] is False and provider.hits("/v1/items") == 2


def test_no_store_is_never_cached(services, tenant, provider, make_integration):
    make_integration("crm")
    for _ in range(2):
        provider.script("/v1/private", Reply(200, {"v": 1}, {"Cache-Control": "no-store"}))
    assert [_get(services, tenant, "/v1/private")["cached"] for _ in range(2)] == [False, False]
    assert provider.hits("/v1/private") == 2


def test_expired_entry_with_etag_is_revalidated(services, tenant, provider, make_integration):
    make_integration("crm")
    provider.script("/v1/doc", Reply(200, {"doc": "v1"}, {"ETag": '"v1"',
                                                         "Cache-Control": "no-cache"}),
                    Reply(304, headers={"ETag": '"v1"', "Cache-Control": "max-age=60"}))
    assert _get(services, tenant, "/v1/doc")["data"] == {"doc": "v1"}
    revalidated = _get(services, tenant, "/v1/doc")
    assert revalidated["cached"] is True and revalidated["data"] == {"doc": "v1"}
    assert revalidated["status_code"] == 200
    assert provider.server.seen[-1].headers.get("If-None-Match") == '"v1"'
    fresh = _get(services, tenant, "/v1/doc")  # refreshed by the 304: no request at all
    assert fresh["cached"] is True and provider.hits("/v1/doc") == 2


def test_tenants_never_share_cache_entries(services, tenant, provider, make_integration):
    make_integration("crm")
    _get(services, tenant)
    other = tenant + "-b"
    from hub.calls import integrations
    from hub.calls.integrations import IntegrationSpec

    with services.sessions() as s, s.begin():
        integrations.create(s, IntegrationSpec(tenant_id=other, name="crm", adapter="rest",
                                               auth_type="api_key",
                                               base_url=provider.url))
        integrations.set_credentials(s, services.vault, other, "crm",
                                     {"api_key": provider.api_key})
    assert _get(services, other)["cached"] is False
    assert provider.hits("/v1/items") == 2
