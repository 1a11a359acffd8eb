"""Faithful local fakes of the Google Geocoding / Distance Matrix APIs and the Yandex
Geocoder HTTP API 1.x, over one small address book.

Google (``/maps/api/geocode/json``, ``/maps/api/distancematrix/json``, ``key=``)
answers HTTP 200 with a ``status`` (OK, ZERO_RESULTS, REQUEST_DENIED with
``error_message`` for a missing or wrong key, INVALID_REQUEST without a query);
Yandex (``/1.x/?apikey&geocode&format=json``) answers
``response.GeoObjectCollection.featureMember[].GeoObject`` with ``Point.pos`` as
"longitude latitude", and errors as HTTP 400/403 with ``{"statusCode", "error",
"message"}``. Tests script other answers per path (OVER_QUERY_LIMIT, 503, a
delay longer than the call's timeout) with :meth:`FakeGeo.script`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.calls.fake_provider import Reply, ScriptedServer, serving


@dataclass(frozen=True)
class Place:
    query: str
    formatted: str
    lat: float
    lng: float


BOOK = (
    Place("Moscow, Novy Arbat Street, 24", "Novy Arbat Street, 24, Moscow, Russia, 119019",
          55.753083, 37.587614),
    Place("Saint Petersburg, Nevsky Prospekt, 28",
          "Nevsky Prospekt, 28, Saint Petersburg, Russia, 191186", 59.935493, 30.325845),
)


def _find(query: str) -> Place | None:
    return next((p for p in BOOK if p.query.lower() == query.strip().lower()), None)


def _near(lat: float, lng: float) -> Place | None:
    return next((p for p in BOOK if abs(p.lat - lat) < 0.01 and abs(p.lng - lng) < 0.01), None)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=UTF-8")


@dataclass
class FakeGeo(ScriptedServer):
    """Base of both fakes: scripted replies per path, one API key."""

    api_key: str = field(default_factory=lambda: "AIza" + secrets.token_hex(16))

    def handle(self, request: Request) -> Response:
        reply = self.next_reply(request.path)
        if reply is not None and (reply.body is not None or reply.status != 200):
            return _json(reply.status, reply.body, reply.headers)
        return self.answer(request)  # a delayed Reply() answers normally, late

    def answer(self, request: Request) -> Response:
        raise NotImplementedError


class FakeGoogleMaps(FakeGeo):
    def answer(self, request: Request) -> Response:
        key = request.args.get("key")
        if not key:
            return _json(200, {"error_message": "You must use an API key to authenticate "
                               "each request to Google Maps Platform APIs.", "results": [],
                               "status": "REQUEST_DENIED"})
        if key != self.api_key:
            return _json(200, {"error_message": "The provided API key is invalid.",
                               "results": [], "status": "REQUEST_DENIED"})
        if request.path == "/maps/api/geocode/json":
            return self._geocode(request)
        if request.path == "/maps/api/distancematrix/json":
            return self._matrix(request)
        return Response("Not Found", status=404)

    def _geocode(self, request: Request) -> Response:
        if "address" in request.args:
            found = _find(request.args["address"])
        elif "latlng" in request.args:
            lat, lng = (float(v) for v in request.args["latlng"].split(","))
            found = _near(lat, lng)
        else:
            return _json(200, {"error_message": "Invalid request. Missing the 'address', "
                               "'components', 'latlng' or 'place_id' parameter.",
                               "results": [], "status": "INVALID_REQUEST"})
        if found is None:
            return _json(200, {"results": [], "status": "ZERO_RESULTS"})
        return _json(200, {"results": [{
            "formatted_address": found.formatted, "place_id": "ChIJ" + found.query[:6],
            "types": ["street_address"],
            "geometry": {"location": {"lat": found.lat, "lng": found.lng},
                         "location_type": "ROOFTOP",
                         "viewport": {"northeast": {"lat": found.lat + 0.001,
                                                    "lng": found.lng + 0.001},
                                      "southwest": {"lat": found.lat - 0.001,
                                                    "lng": found.lng - 0.001}}}}],
            "status": "OK"})

    def _matrix(self, request: Request) -> Response:
        origin, destination = (self._point(request.args.get(n, ""))
                               for n in ("origins", "destinations"))
        element: dict[str, Any] = {"status": "NOT_FOUND"}
        if origin is not None and destination is not None:
            # The road is longer than the crow flies: 1.25 x haversine.
            metres = int(1.25 * _haversine(origin, destination))
            element = {"status": "OK", "distance": {"text": f"{metres / 1000:.0f} km",
                                                    "value": metres},
                       "duration": {"text": "-", "value": metres // 25}}
        return _json(200, {"destination_addresses": [destination.formatted if destination
                                                     else ""],
                           "origin_addresses": [origin.formatted if origin else ""],
                           "rows": [{"elements": [element]}], "status": "OK"})

    @staticmethod
    def _point(value: str) -> Place | None:
        match = re.fullmatch(r"(-?[\d.]+),(-?[\d.]+)", value)
        if match:
            return _near(float(match.group(1)), float(match.group(2))) or Place(
                value, value, float(match.group(1)), float(match.group(2)))
        return _find(value)


class FakeYandex(FakeGeo):
    def answer(self, request: Request) -> Response:
        if request.path != "/1.x/":
            return _json(404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"})
        if request.args.get("apikey") != self.api_key:
            return _json(403, {"statusCode": 403, "error": "Forbidden",
                               "message": "Invalid api key"})
        geocode = request.args.get("geocode")
        if not geocode:
            return _json(400, {"statusCode": 400, "error": "Bad Request",
                               "message": 'Missing "geocode" parameter'})
        match = re.fullmatch(r"(-?[\d.]+),\s*(-?[\d.]+)", geocode)
        found = _near(float(match.group(2)), float(match.group(1))) if match \
            else _find(geocode)  # "longitude,latitude"
        members = [] if found is None else [{"GeoObject": {
            "metaDataProperty": {"GeocoderMetaData": {
                "kind": "house", "precision": "exact", "text": found.formatted,
                "Address": {"country_code": "RU", "formatted": found.formatted}}},
            "name": found.formatted.split(",")[0], "description": "Russia",
            "Point": {"pos": f"{found.lng} {found.lat}"}}}]
        return _json(200, {"response": {"GeoObjectCollection": {
            "metaDataProperty": {"GeocoderResponseMetaData": {
                "request": geocode, "results": request.args.get("results", "10"),
                "found": str(len(members))}},
            "featureMember": members}}})


def _haversine(a: Place, b: Place) -> float:
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * \
        math.sin(math.radians(b.lng - a.lng) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def over_query_limit() -> Reply:
    return Reply(200, {"error_message": "You have exceeded your rate-limit for this API.",
                       "results": [], "status": "OVER_QUERY_LIMIT"})


def fake_google_maps() -> AbstractContextManager[FakeGoogleMaps]:
    return serving(FakeGoogleMaps())


def fake_yandex() -> AbstractContextManager[FakeYandex]:
    return serving(FakeYandex())
