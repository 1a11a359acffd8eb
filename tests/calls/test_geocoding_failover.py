"""Seed 001's failover, Google primary and Yandex fallback, through a real worker: the
call moves on for OVER_QUERY_LIMIT, a 503, a timeout, a spent quota and a degraded
health status, and the answer and audit rows say who served and why."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from hub.calls.pipeline import CallRequest, execute_call
from hub.ops import healthchecks
from hub.platform.models import Integration, IntegrationLog
from tests.calls.fake_geo import (
    BOOK,
    FakeGoogleMaps,
    FakeYandex,
    over_query_limit,
)
from tests.calls.fake_provider import Reply
from tests.calls.test_geocoding import (
    GEOCODE,
    YANDEX,
    call,
    expected,
    failure,
    register,
)
from tests.cli.conftest import Hub

ARBAT, NEVSKY = BOOK




@pytest.fixture
def geo(tenant: str, google_maps: FakeGoogleMaps, yandex: FakeYandex) -> str:
    """seed 001: `hub integrations add` Yandex, then Google with --fallback and --priority."""
    register(tenant, "maps-yandex", "yandex_geocoder", yandex, "--priority", "50")
    register(tenant, "maps", "google_geocoding", google_maps, "--fallback", "maps-yandex",
             "--priority", "100")
    return "maps"


def _rows(sessions: Any, tenant: str) -> list[tuple[str, str, str | None, str | None, str]]:
    with sessions() as session:
        found = session.execute(
            select(Integration.name, IntegrationLog.outcome, IntegrationLog.failover_from,
                   IntegrationLog.failover_reason, IntegrationLog.error)
            .join(Integration, Integration.id == IntegrationLog.integration_id)
            .where(IntegrationLog.tenant_id == tenant).order_by(IntegrationLog.started_at))
        return [tuple(r) for r in found]  # type: ignore[misc]


@pytest.mark.parametrize(("google_says", "reason", "options"), [
    (over_query_limit(), "rate_limited", {}),
    (Reply(503, {"error_message": "Service Unavailable"}), "server_error", {}),
    (Reply(200, None, delay=3), "timeout", {"timeout": 1}),
])
def test_google_failing_is_served_by_yandex(worker, client_app, tenant, sessions, google_maps,
                                            yandex, geo, google_says, reason, options):
    google_maps.script(GEOCODE, google_says)
    answer = call(client_app, tenant, geo, "geocode", {"address": ARBAT.query}, **options)
    assert answer["ok"] and answer["integration"] == "maps-yandex"
    assert answer["data"] == expected(ARBAT, "yandex")  # the shape the caller always gets
    [skip] = answer["failover"]
    assert (skip["integration"], skip["reason"]) == ("maps", reason)
    assert google_maps.hits(GEOCODE) == 1 and yandex.hits(YANDEX) == 1
    [(first, failed, _, _, error), (second, ok, came_from, why, _)] = _rows(sessions, tenant)
    assert (first, failed, second, ok) == ("maps", "failed", "maps-yandex", "success")
    assert error.endswith("failing over to maps-yandex")
    assert came_from == "maps" and why.startswith(f"maps: {reason}")
    status, logs = Hub().json("logs", "--tenant", tenant, "--integration", "maps-yandex")
    assert status == 0 and logs[0]["failover_from"] == "maps"
    assert logs[0]["failover_reason"] == why


def test_failover_in_turn_through_the_operations_own_task(worker, client_app, tenant,
                                                          google_maps, yandex, geo):
    google_maps.script(GEOCODE, over_query_limit(), Reply(503), Reply(200, None, delay=3))
    reasons = []
    for address in (ARBAT.query, NEVSKY.query, ARBAT.query):
        answer = client_app.send_task("hub.google_geocoding.geocode", args=[tenant, geo],
                                      kwargs={"address": address}).get(timeout=30) \
            if len(reasons) < 2 else call(client_app, tenant, geo, "geocode",
                                          {"address": address}, timeout=1, cache=False)
        assert answer["integration"] == "maps-yandex"
        reasons.append(answer["failover"][0]["reason"])
    assert reasons == ["rate_limited", "server_error", "timeout"]
    google_maps.script(GEOCODE)  # Google is fine again
    back = call(client_app, tenant, geo, "geocode", {"address": NEVSKY.query}, cache=False)
    assert back["integration"] == "maps" and "failover" not in back
    assert back["data"] == expected(NEVSKY, "google")


def test_a_spent_quota_fails_over_instead_of_waiting(worker, client_app, tenant, sessions,
                                                     google_maps, yandex):
    register(tenant, "maps-yandex", "yandex_geocoder", yandex)
    register(tenant, "maps", "google_geocoding", google_maps, "--fallback", "maps-yandex",
             "--per-minute", "1")
    first = call(client_app, tenant, "maps", "geocode", {"address": ARBAT.query})
    second = call(client_app, tenant, "maps", "geocode", {"address": NEVSKY.query})
    assert first["integration"] == "maps" and second["integration"] == "maps-yandex"
    assert second["failover"][0]["reason"] == "rate_limited"
    assert [r[:2] for r in _rows(sessions, tenant)] == [
        ("maps", "success"), ("maps", "rate_limited"), ("maps-yandex", "success")]


def test_a_degraded_primary_is_skipped_until_it_recovers(worker, client_app, services, tenant,
                                                         google_maps, yandex, geo):
    google_maps.script(GEOCODE, over_query_limit())  # what beat's probe sees
    assert healthchecks.check_one(services, tenant, geo)["health_status"] == "degraded"
    probed = google_maps.hits(GEOCODE)
    answer = call(client_app, tenant, geo, "geocode", {"address": ARBAT.query})
    assert answer["integration"] == "maps-yandex"
    assert answer["failover"] == [{"integration": "maps", "reason": "degraded", "error": None}]
    assert google_maps.hits(GEOCODE) == probed  # skipped straight to the fallback
    assert healthchecks.check_one(services, tenant, geo)["health_status"] == "healthy"
    again = call(client_app, tenant, geo, "geocode", {"address": NEVSKY.query})
    assert again["integration"] == "maps" and "failover" not in again


def test_a_primary_found_down_is_skipped_for_a_healthy_fallback(services, sessions, tenant,
                                                                google_maps, yandex, geo):
    with sessions() as session, session.begin():  # beat's last probe got no answer
        session.execute(update(Integration).where(Integration.tenant_id == tenant,
                                                  Integration.name == geo)
                        .values(health_status="down"))
    probed = google_maps.hits(GEOCODE)
    answer = execute_call(services, CallRequest(tenant, geo, "geocode",
                                                {"address": ARBAT.query}))
    assert answer.result["integration"] == "maps-yandex"
    assert answer.result["failover"] == [{"integration": "maps", "reason": "down",
                                          "error": None}]
    assert google_maps.hits(GEOCODE) == probed


def test_a_degraded_primary_is_still_tried_when_the_fallback_is_degraded_too(
        services, tenant, google_maps, yandex, geo):
    google_maps.script(GEOCODE, over_query_limit())
    yandex.script(YANDEX, Reply(503))
    for name in (geo, "maps-yandex"):
        assert healthchecks.check_one(services, tenant, name)["health_status"] == "degraded"
    answer = execute_call(services, CallRequest(tenant, geo, "geocode",
                                                {"address": ARBAT.query}))
    assert answer.result["integration"] == "maps"  # the preferred one, not a skip
    assert "failover" not in answer.result


def test_final_answers_do_not_fail_over(worker, client_app, tenant, google_maps, yandex):
    register(tenant, "maps-yandex", "yandex_geocoder", yandex)
    register(tenant, "maps", "google_geocoding", google_maps, "--fallback", "maps-yandex",
             api_key="AIza-revoked-key")
    denied = failure(client_app, tenant, "maps", "geocode", {"address": ARBAT.query})
    assert denied["code"] == "AUTH_ERROR" and yandex.hits() == 0


def test_fallbacks_are_tried_by_priority(services, tenant, google_maps, yandex):
    register(tenant, "ya-spare", "yandex_geocoder", yandex, "--priority", "90")
    register(tenant, "ya-cheap", "yandex_geocoder", yandex, "--priority", "10",
             "--fallback", "ya-spare")
    register(tenant, "maps", "google_geocoding", google_maps, "--fallback", "ya-cheap")
    google_maps.script(GEOCODE, Reply(503))
    answer = execute_call(services, CallRequest(tenant, "maps", "geocode",
                                                {"address": ARBAT.query}))
    assert answer.result["integration"] == "ya-spare"  # priority 90 before 10
    yandex.script(YANDEX, Reply(503))
    google_maps.script(GEOCODE, Reply(503))
    both = execute_call(services, CallRequest(tenant, "maps", "geocode",
                                              {"address": NEVSKY.query}))
    assert both.result["integration"] == "ya-cheap"
    assert [(s["integration"], s["reason"]) for s in both.result["failover"]] == [
        ("maps", "server_error"), ("ya-spare", "server_error")]


def test_when_every_provider_fails_the_call_is_retried(services, tenant, google_maps, yandex,
                                                       geo):
    google_maps.script(GEOCODE, Reply(503))
    yandex.script(YANDEX, Reply(503))
    outcome = execute_call(services, CallRequest(tenant, geo, "geocode",
                                                 {"address": ARBAT.query}))
    assert outcome.status == "retry" and outcome.error.code == "UPSTREAM_ERROR"
    again = execute_call(services, CallRequest(tenant, geo, "geocode",
                                               {"address": ARBAT.query}), attempt=2)
    assert again.status == "success" and again.result["integration"] == "maps"
