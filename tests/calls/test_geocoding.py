"""google_geocoding and yandex_geocoder through a real worker, sent by name, against
faithful fakes: one normalised answer, Google's in-body statuses, Yandex's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.adapters.geocoding import great_circle_m
from hub.calls import integrations, probe
from hub.cli import commands  # noqa: F401 - registers the command groups
from tests.calls.fake_geo import (
    BOOK,
    over_query_limit,
)
from tests.calls.fake_provider import Reply
from tests.cli.conftest import Hub

TIMEOUT = 30
ARBAT, NEVSKY = BOOK
GEOCODE, YANDEX = "/maps/api/geocode/json", "/1.x/"




def register(tenant: str, name: str, adapter: str, fake: Any, *options: str,
             config: dict[str, Any] | None = None, api_key: str | None = None) -> None:
    """The README's registration: ``hub integrations add`` + ``hub credentials set``."""
    hub = Hub()
    config = {"retry": {"base": 0.01, "cap": 0.05, "max_attempts": 3}, **(config or {})}
    added = hub("integrations", "add", "--tenant", tenant, "--name", name, "--adapter", adapter,
                "--base-url", fake.url, "--auth-type", "api_key", "--config",
                json.dumps(config), *options)
    assert added.exit_code == 0, added.output
    stored = hub("credentials", "set", "--tenant", tenant, "--integration", name,
                 input=json.dumps({"api_key": api_key or fake.api_key}))
    assert stored.exit_code == 0, stored.output


def call(client_app: Any, tenant: str, integration: str, operation: str,
         params: dict[str, Any], **options: Any) -> Any:
    return client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": integration, "operation": operation,
        "params": params, **options}).get(timeout=TIMEOUT)


def failure(client_app: Any, tenant: str, integration: str, operation: str,
            params: dict[str, Any]) -> dict[str, Any]:
    result = client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": integration, "operation": operation,
        "params": params})
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    return dict(caught.value.args[0]["error"])


def expected(place: Any, provider: str) -> dict[str, Any]:
    return {"lat": place.lat, "lng": place.lng, "formatted_address": place.formatted,
            "precision": "exact", "provider": provider}


def test_google_geocode_by_both_names_one_shape_cached(worker, client_app, tenant,
                                                      google_maps):
    register(tenant, "geo", "google_geocoding", google_maps)
    first = call(client_app, tenant, "geo", "geocode", {"address": ARBAT.query})
    assert first["data"] == expected(ARBAT, "google") and first["cached"] is False
    own = client_app.send_task("hub.google_geocoding.geocode", args=[tenant, "geo"],
                               kwargs={"address": ARBAT.query}).get(timeout=TIMEOUT)
    assert own["data"] == first["data"] and own["cached"] is True
    [seen] = google_maps.server.seen
    assert seen.path == GEOCODE
    assert seen.query == {"address": ARBAT.query, "key": google_maps.api_key}


def test_yandex_geocode_and_reverse_read_longitude_first(worker, client_app, tenant, yandex):
    register(tenant, "ya", "yandex_geocoder", yandex)
    found = call(client_app, tenant, "ya", "geocode", {"address": NEVSKY.query,
                                                       "language": "en_US"})
    assert found["data"] == expected(NEVSKY, "yandex")
    assert yandex.server.seen[0].query == {"geocode": NEVSKY.query, "format": "json",
                                           "results": "1", "lang": "en_US",
                                           "apikey": yandex.api_key}
    back = client_app.send_task("hub.yandex_geocoder.reverse_geocode", args=[tenant, "ya"],
                                kwargs={"lat": ARBAT.lat, "lng": ARBAT.lng}
                                ).get(timeout=TIMEOUT)
    assert back["data"] == expected(ARBAT, "yandex")
    assert yandex.server.seen[-1].query["geocode"] == f"{ARBAT.lng},{ARBAT.lat}"


def test_google_reverse_geocode(worker, client_app, tenant, google_maps):
    register(tenant, "geo", "google_geocoding", google_maps)
    back = client_app.send_task("hub.google_geocoding.reverse_geocode", args=[tenant, "geo"],
                                kwargs={"lat": NEVSKY.lat, "lng": NEVSKY.lng}
                                ).get(timeout=TIMEOUT)
    assert back["data"] == expected(NEVSKY, "google")
    assert google_maps.server.seen[-1].query["latlng"] == f"{NEVSKY.lat},{NEVSKY.lng}"


def test_nothing_found_is_an_empty_answer_not_an_error(worker, client_app, tenant, google_maps,
                                                       yandex):
    register(tenant, "geo", "google_geocoding", google_maps)
    register(tenant, "ya", "yandex_geocoder", yandex)
    for integration in ("geo", "ya"):
        nowhere = call(client_app, tenant, integration, "geocode", {"address": "Atlantis, 1"})
        assert nowhere["ok"] is True and nowhere["data"] is None


def test_google_statuses_inside_200_bodies(worker, client_app, tenant, google_maps):
    register(tenant, "geo", "google_geocoding", google_maps)
    register(tenant, "geo-badkey", "google_geocoding", google_maps, api_key="AIza-revoked-key")
    denied = failure(client_app, tenant, "geo-badkey", "geocode", {"address": ARBAT.query})
    assert denied["code"] == "AUTH_ERROR"
    assert "The provided API key is invalid" in denied["message"]
    assert "AIza-revoked-key" not in json.dumps(denied)
    google_maps.script(GEOCODE, Reply(200, {"status": "INVALID_REQUEST", "results": [],
                                            "error_message": "Invalid request."}))
    invalid = failure(client_app, tenant, "geo", "geocode", {"address": "x"})
    assert invalid["code"] == "VALIDATION_ERROR"
    assert invalid["details"]["provider_status"] == "INVALID_REQUEST"
    google_maps.script(GEOCODE, Reply(200, {"status": "UNKNOWN_ERROR", "results": []}),
                       over_query_limit())
    retried = call(client_app, tenant, "geo", "geocode", {"address": NEVSKY.query})
    assert retried["attempts"] == 3 and retried["data"] == expected(NEVSKY, "google")


def test_yandex_error_bodies(worker, client_app, tenant, yandex):
    register(tenant, "ya", "yandex_geocoder", yandex)
    register(tenant, "ya-bad", "yandex_geocoder", yandex, api_key="wrong-yandex-key")
    denied = failure(client_app, tenant, "ya-bad", "geocode", {"address": ARBAT.query})
    assert denied["code"] == "AUTH_ERROR" and denied["details"]["status_code"] == 403
    assert "Invalid api key" in denied["details"]["body"]
    yandex.script(YANDEX, Reply(403, {"statusCode": 403, "error": "Forbidden",
                                      "message": "Limit is exceeded"}),
                  Reply(429, {"statusCode": 429, "error": "Too Many Requests",
                              "message": "Too many requests"}, {"Retry-After": "0"}))
    retried = call(client_app, tenant, "ya", "geocode", {"address": ARBAT.query})
    assert retried["attempts"] == 3 and retried["data"] == expected(ARBAT, "yandex")


def test_distance_great_circle_from_geocoded_addresses_and_points(worker, client_app, tenant,
                                                                  yandex):
    register(tenant, "ya", "yandex_geocoder", yandex)
    crow = great_circle_m({"lat": ARBAT.lat, "lng": ARBAT.lng},
                          {"lat": NEVSKY.lat, "lng": NEVSKY.lng})
    assert 630_000 < crow < 640_000  # Moscow - Saint Petersburg, ~634 km
    answer = call(client_app, tenant, "ya", "distance", {"origin": ARBAT.query,
                                                         "destination": NEVSKY.query})
    assert answer["data"]["method"] == "great_circle"
    assert answer["data"]["distance_m"] == round(crow, 1)
    assert answer["data"]["origin"] == expected(ARBAT, "yandex")
    assert yandex.hits(YANDEX) == 2  # one geocode per address
    points = client_app.send_task("hub.yandex_geocoder.distance", args=[tenant, "ya"], kwargs={
        "origin": {"lat": ARBAT.lat, "lng": ARBAT.lng}, "destination": NEVSKY.query},
        ).get(timeout=TIMEOUT)
    assert points["data"]["distance_m"] == round(crow, 1)
    assert yandex.hits(YANDEX) == 3  # the point needed no request
    lost = call(client_app, tenant, "ya", "distance", {"origin": "Atlantis, 1",
                                                       "destination": NEVSKY.query})
    assert lost["data"]["distance_m"] is None and lost["data"]["origin"] is None


def test_distance_through_googles_distance_matrix_when_configured(worker, client_app, tenant,
                                                                  google_maps):
    register(tenant, "geo", "google_geocoding", google_maps,
             config={"distance_api": "distance_matrix"})
    answer = client_app.send_task("hub.google_geocoding.distance", args=[tenant, "geo"], kwargs={
        "origin": ARBAT.query, "destination": {"lat": NEVSKY.lat, "lng": NEVSKY.lng}},
        ).get(timeout=TIMEOUT)
    crow = great_circle_m({"lat": ARBAT.lat, "lng": ARBAT.lng},
                          {"lat": NEVSKY.lat, "lng": NEVSKY.lng})
    data = answer["data"]
    assert data["method"] == "distance_matrix" and data["provider"] == "google"
    assert data["distance_m"] == int(1.25 * crow)  # the provider's travel distance
    assert data["destination"]["formatted_address"] == NEVSKY.formatted
    [seen] = google_maps.server.seen
    assert seen.path == "/maps/api/distancematrix/json"
    assert seen.query["destinations"] == f"{NEVSKY.lat},{NEVSKY.lng}"


def test_health_reads_googles_status(services, tenant, google_maps, yandex):
    register(tenant, "geo", "google_geocoding", google_maps)
    register(tenant, "ya", "yandex_geocoder", yandex)
    assert probe.probe(services, tenant, "geo")["ok"] is True
    assert probe.probe(services, tenant, "ya")["ok"] is True
    google_maps.script(GEOCODE, over_query_limit())
    report = probe.probe(services, tenant, "geo")
    assert report["ok"] is False and "RATE_LIMITED" in report["error"]
    assert report["status_code"] == 200


def test_registration_defaults(services, tenant, google_maps):
    register(tenant, "geo", "google_geocoding", google_maps)
    with services.sessions() as session:
        assert integrations.get(session, tenant, "geo").rate_limit_per_minute == 50


@pytest.mark.parametrize("adapter", ["google_geocoding", "yandex_geocoder"])
@pytest.mark.parametrize(("operation", "params", "requests_each"), [
    ("geocode", {"address": ARBAT.query}, 1),
    ("reverse_geocode", {"lat": NEVSKY.lat, "lng": NEVSKY.lng}, 1),
    ("distance", {"origin": ARBAT.query, "destination": {"lat": NEVSKY.lat,
                                                         "lng": NEVSKY.lng}}, 1),
])
def test_every_operation_by_both_task_names(worker, client_app, tenant, google_maps, yandex,
                                            adapter, operation, params, requests_each):
    fake = google_maps if adapter == "google_geocoding" else yandex
    register(tenant, "geo", adapter, fake)
    by_name = client_app.send_task(f"hub.{adapter}.{operation}", args=[tenant, "geo"],
                                   kwargs=params).get(timeout=TIMEOUT)
    by_call = call(client_app, tenant, "geo", operation, params, cache=False)
    assert by_name["data"] == by_call["data"] and by_call["cached"] is False
    provider = "google" if adapter == "google_geocoding" else "yandex"
    assert by_name["data"]["provider"] == provider
    assert fake.hits() == 2 * requests_each
