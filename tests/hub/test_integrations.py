from __future__ import annotations

import pytest

from hub.calls import integrations
from hub.platform.errors import Conflict, IntegrationDisabled, NotFound, ValidationError


def _spec(tenant, name="maps", **kw):
    return integrations.IntegrationSpec(tenant_id=tenant, name=name, adapter="rest",
                                        base_url="https://api.example.com", **kw)


def test_tenant_b_cannot_read_or_change_tenant_a_integration(sessions, tenant, vault):
    other = tenant + "-b"
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant))

    with sessions() as session, session.begin():
        with pytest.raises(NotFound):
            integrations.get(session, other, "maps")
        with pytest.raises(NotFound):
            integrations.update(session, other, "maps", base_url="https://evil.example")
        with pytest.raises(NotFound):
            integrations.set_status(session, other, "maps", "disabled")
        with pytest.raises(NotFound):
            integrations.set_credentials(session, vault, other, "maps", {"k": "v"})
        assert integrations.list_for_tenant(session, other) == []

    with sessions() as session:
        row = integrations.get(session, tenant, "maps")
        assert (row.base_url, row.status, row.credentials) == (
            "https://api.example.com", "active", None)


def test_same_name_in_two_tenants_is_fine_but_not_twice_in_one(sessions, tenant):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant))
        integrations.create(session, _spec(tenant + "-b"))
        with pytest.raises(Conflict, match="already exists"):
            integrations.create(session, _spec(tenant))


def test_disabled_integration_is_refused(sessions, tenant):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant))
        integrations.set_status(session, tenant, "maps", "disabled")

    with sessions() as session, pytest.raises(IntegrationDisabled):
        integrations.get_active(session, tenant, "maps")


def test_enable_again_makes_it_usable(sessions, tenant):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant))
        integrations.set_status(session, tenant, "maps", "disabled")
        integrations.set_status(session, tenant, "maps", "active")
        assert integrations.get_active(session, tenant, "maps").name == "maps"


@pytest.mark.parametrize("kw, message", [
    ({"auth_type": "magic"}, "unknown auth type"),
    ({"rate_limit_per_minute": 0}, "rate limits must be positive"),
])
def test_bad_specs_are_refused(sessions, tenant, kw, message):
    with sessions() as session, session.begin(), \
            pytest.raises(ValidationError, match=message):
            integrations.create(session, _spec(tenant, **kw))


def test_base_url_must_be_absolute_http(sessions, tenant):
    spec = integrations.IntegrationSpec(tenant_id=tenant, name="x", adapter="rest",
                                        base_url="ftp://files.example.com")
    with sessions() as session, session.begin(), \
            pytest.raises(ValidationError, match="absolute http"):
            integrations.create(session, spec)


def test_fallback_must_exist_in_the_same_tenant(sessions, tenant):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant + "-b", name="backup"))
        with pytest.raises(NotFound):
            integrations.create(session, _spec(tenant, fallback="backup"))
        backup = integrations.create(session, _spec(tenant, name="backup"))
        primary = integrations.create(session, _spec(tenant, fallback="backup"))
        assert primary.fallback_integration_id == backup.id


def test_describe_never_includes_credentials(sessions, tenant, vault):
    with sessions() as session, session.begin():
        integrations.create(session, _spec(tenant, auth_type="api_key"))
        row = integrations.set_credentials(session, vault, tenant, "maps", {"api_key": "sk_1"})
        described = integrations.describe(row)

    assert described["has_credentials"] is True
    assert "sk_1" not in repr(described) and row.credentials not in repr(described)


def _next_event(pubsub, tenant, deadline_s=5.0):
    """The next event of ``tenant`` (channels are shared by every test run on this Redis)."""
    import json
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            event = json.loads(message["data"])
            if event["tenant"] == tenant:
                return event
    return None


def test_register_announces_once_committed_and_not_when_refused(services, tenant):
    pubsub = services.redis.pubsub()
    pubsub.subscribe("integration.service.registered")
    pubsub.get_message(timeout=1)
    try:
        row = integrations.register(services, _spec(tenant))
        announced = _next_event(pubsub, tenant)
        with pytest.raises(Conflict):
            integrations.register(services, _spec(tenant))
        again = _next_event(pubsub, tenant, deadline_s=1.0)
    finally:
        pubsub.close()

    assert (announced["tenant"], announced["data"]) == (
        tenant, {"integration": "maps", "adapter": "rest", "id": str(row.id)})
    assert again is None


def test_update_sets_priority_and_fallback_and_removes_it(sessions, tenant):
    with sessions() as session, session.begin():
        backup = integrations.create(session, _spec(tenant, name="backup"))
        integrations.create(session, _spec(tenant))
    with sessions() as session, session.begin():
        row = integrations.update(session, tenant, "maps", priority=5, fallback="backup")
        assert (row.priority, row.fallback_integration_id) == (5, backup.id)
        with pytest.raises(NotFound):
            integrations.update(session, tenant, "maps", fallback="nope")
        with pytest.raises(ValidationError, match="its own fallback"):
            integrations.update(session, tenant, "maps", fallback="maps")
    with sessions() as session, session.begin():
        assert integrations.update(session, tenant, "maps",
                                   fallback=None).fallback_integration_id is None
