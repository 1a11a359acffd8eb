"""Google Geocoding API (JSON) and, when configured, its Distance Matrix API.

Base URL ``https://maps.googleapis.com``; requests go to
``/maps/api/geocode/json`` (``address=`` or ``latlng=lat,lng``) and
``/maps/api/distancematrix/json`` (``origins``, ``destinations``) with the API
key as the ``key`` query parameter (auth type ``api_key``, credential
``api_key``). Operations and answer shape: :mod:`hub.adapters.geocoding`.

Google reports errors inside HTTP 200 bodies (``status``; Geocoding API,
"Status codes"), read here as hub errors:

==================  ==============================================================
``OK``              the answer
``ZERO_RESULTS``    an empty answer (``null`` place), not an error
``OVER_QUERY_LIMIT`` / ``OVER_DAILY_LIMIT``  RATE_LIMITED: retried, and a reason to
                    fail over to the next integration
``REQUEST_DENIED``  AUTH_ERROR (bad or restricted key, API not enabled)
``INVALID_REQUEST`` VALIDATION_ERROR (the provider refused the query itself)
``UNKNOWN_ERROR``   a server error: retried, counts for the breaker
==================  ==============================================================

Config: ``distance_api: "distance_matrix"`` makes ``distance`` use the Distance
Matrix API (a travel distance; ``distance_mode``: driving (default), walking,
bicycling, transit); without it ``distance`` is great-circle between geocoded
points. ``health_latlng`` (default ``0,0``) is what beat's probe reverse-geocodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hub.adapters.base import (
    IntegrationView,
    Operation,
    OutboundRequest,
    join_url,
    json_body,
)
from hub.adapters.geocoding import GeocodingAdapter, place
from hub.platform.errors import (
    AuthError,
    HubError,
    RateLimited,
    RetryableError,
    UpstreamError,
    ValidationError,
)

GEOCODE = "/maps/api/geocode/json"
MATRIX = "/maps/api/distancematrix/json"
#: geometry.location_type -> the normalised precision (Geocoding API, "Results").
_PRECISION = {"ROOFTOP": "exact", "RANGE_INTERPOLATED": "interpolated",
              "GEOMETRIC_CENTER": "area", "APPROXIMATE": "area"}
_ERRORS: dict[str, type[HubError]] = {
    "OVER_QUERY_LIMIT": RateLimited, "OVER_DAILY_LIMIT": RateLimited,
    "REQUEST_DENIED": AuthError, "INVALID_REQUEST": ValidationError,
    "UNKNOWN_ERROR": RetryableError,
}
_ANSWERS = ("OK", "ZERO_RESULTS")


def _where(value: Any) -> str:
    return f"{value['lat']},{value['lng']}" if isinstance(value, Mapping) else str(value)


def status_error(body: Any) -> HubError | None:
    """The hub error of a Google ``status`` other than OK / ZERO_RESULTS, with
    Google's ``error_message``; UpstreamError for a body that is not Google's."""
    status = body.get("status") if isinstance(body, Mapping) else None
    if status in _ANSWERS:
        return None
    message = str(body.get("error_message") or "no error_message")[:300] \
        if isinstance(body, Mapping) else "not JSON"
    error = _ERRORS.get(str(status), UpstreamError)
    return error(f"Google Maps answered {status}: {message}",
                 details={"provider_status": status})


class GoogleGeocodingAdapter(GeocodingAdapter):
    name = "google_geocoding"
    provider = "google"
    auth_defaults: ClassVar[Mapping[str, Any]] = {"in": "query", "name": "key"}

    def geocode_request(self, integration: IntegrationView, address: str,
                        language: str | None) -> OutboundRequest:
        return self._get(integration, GEOCODE, {"address": address}, language)

    def reverse_request(self, integration: IntegrationView, lat: float, lng: float,
                        language: str | None) -> OutboundRequest:
        return self._get(integration, GEOCODE, {"latlng": f"{lat},{lng}"}, language)

    def distance_request(self, integration: IntegrationView, origin: Any, destination: Any,
                         language: str | None) -> OutboundRequest | None:
        if integration.config.get("distance_api") != "distance_matrix":
            return None
        query = {"origins": _where(origin), "destinations": _where(destination),
                 "mode": str(integration.config.get("distance_mode", "driving"))}
        return self._get(integration, MATRIX, query, language)

    @staticmethod
    def _get(integration: IntegrationView, path: str, query: dict[str, Any],
             language: str | None) -> OutboundRequest:
        if language:
            query["language"] = language
        return OutboundRequest("GET", join_url(integration.base_url, path), params=query)

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        """Google's JSON after its ``status`` is checked (see the module's table)."""
        body = json_body(content)
        error = status_error(body)
        if error is not None:
            raise error
        return body

    def places(self, body: Any) -> list[dict[str, Any]]:
        return [self._place(result) for result in body.get("results", [])]

    def _place(self, result: Mapping[str, Any]) -> dict[str, Any]:
        geometry = result.get("geometry") or {}
        location = geometry.get("location") or {}
        precision = _PRECISION.get(str(geometry.get("location_type")), "area")
        if precision == "area" and "route" in result.get("types", ()):
            precision = "street"
        return place(self.provider, location.get("lat"), location.get("lng"),
                     result.get("formatted_address"), precision)

    def distance_answer(self, body: Any) -> dict[str, Any]:
        """A Distance Matrix answer (one origin, one destination) in the shared shape;
        an element NOT_FOUND / ZERO_RESULTS gives ``distance_m: null``."""
        element = (body.get("rows") or [{}])[0].get("elements", [{}])[0]
        found = element.get("status") == "OK"
        return {"distance_m": element["distance"]["value"] if found else None,
                "duration_s": element["duration"]["value"] if found else None,
                "method": "distance_matrix", "provider": self.provider,
                "origin": self._end(body, "origin_addresses"),
                "destination": self._end(body, "destination_addresses")}

    def _end(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        addresses = body.get(key) or [None]
        return place(self.provider, None, None, addresses[0], None)

    def health_request(self, integration: IntegrationView) -> OutboundRequest:
        """A reverse geocode of ``config.health_latlng`` (one request of the quota)."""
        return self._get(integration, GEOCODE,
                         {"latlng": str(integration.config.get("health_latlng", "0,0"))}, None)

    def health_error(self, status: int, headers: Mapping[str, str],
                     content: bytes) -> str | None:
        error = status_error(json_body(content))
        return f"{error.code}: {error.message}" if error is not None else None
