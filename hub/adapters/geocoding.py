"""What every geocoding adapter shares: its operations, one answer shape, distances.

Not an adapter itself (no ``name``); ``google_geocoding`` and ``yandex_geocoder``
subclass :class:`GeocodingAdapter`, so a caller never needs to know which
provider answered (seed 001: Google primary, Yandex fallback). Operations:

- ``geocode``: ``address`` [``language``] -> a place, or ``null`` when the
  provider found nothing (not an error)
- ``reverse_geocode``: ``lat``, ``lng`` [``language``] -> a place, or ``null``
- ``distance``: ``origin``, ``destination`` (each an address or ``{lat, lng}``)
  -> ``{distance_m, method, provider, origin, destination}``: ``method`` is
  ``distance_matrix`` when the provider's distance API is configured and
  answered (a travel distance), else ``great_circle`` (haversine between the
  geocoded points, :data:`EARTH_RADIUS_M`); ``distance_m`` is null when a point
  could not be found

A place is ``{lat, lng, formatted_address, precision, provider}``; ``precision``
is one of :data:`PRECISIONS`. Answers are cached 60 minutes and new integrations
get 50 requests/minute (seed 001).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from hub.adapters.base import (
    Adapter,
    Exchange,
    IntegrationView,
    Operation,
    OutboundRequest,
)
from hub.adapters.transform import closed_object

ANSWER_TTL = 3600
#: Mean Earth radius (IUGG), metres: the haversine distance's sphere.
EARTH_RADIUS_M = 6_371_008.8
#: The normalised precision of a place, best first: the building itself; a house
#: number placed along its street; the street; a coarser area (locality, region).
PRECISIONS = ("exact", "interpolated", "street", "area")

_TEXT = {"type": "string", "minLength": 1, "maxLength": 500}
_LANGUAGE = {"type": "string", "pattern": "^[A-Za-z]{2,3}([_-][A-Za-z]{2,4})?$"}
_LAT = {"type": "number", "minimum": -90, "maximum": 90}
_LNG = {"type": "number", "minimum": -180, "maximum": 180}
_POINT = closed_object({"lat": _LAT, "lng": _LNG}, ["lat", "lng"])
_WHERE = {"oneOf": [_TEXT, _POINT]}


def _schema(required: list[str], **properties: Any) -> dict[str, Any]:
    return closed_object({**properties, "language": _LANGUAGE}, required)


OPERATIONS = (
    Operation("geocode", params_schema=_schema(["address"], address=_TEXT),
              cacheable=True, cache_ttl=ANSWER_TTL, description="address -> place"),
    Operation("reverse_geocode", params_schema=_schema(["lat", "lng"], lat=_LAT, lng=_LNG),
              cacheable=True, cache_ttl=ANSWER_TTL, description="coordinates -> place"),
    Operation("distance", params_schema=_schema(["origin", "destination"], origin=_WHERE,
                                                destination=_WHERE),
              cacheable=True, cache_ttl=ANSWER_TTL,
              description="distance between two addresses or points"),
)


def place(provider: str, lat: float | None, lng: float | None, formatted_address: str | None,
          precision: str | None) -> dict[str, Any]:
    """The normalised answer shape."""
    return {"lat": lat, "lng": lng, "formatted_address": formatted_address,
            "precision": precision, "provider": provider}


def great_circle_m(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Haversine distance in metres between two ``{lat, lng}`` points."""
    lat1, lat2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlat, dlng = lat2 - lat1, math.radians(b["lng"] - a["lng"])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class GeocodingAdapter(Adapter):
    """The geocoding operations over two provider hooks: the request for an address
    or a point, and the places in an answer. A provider with a distance API also
    implements :meth:`distance_request` / :meth:`distance_answer`."""

    provider: ClassVar[str] = ""
    operations = OPERATIONS
    default_limits: ClassVar[Mapping[str, int]] = {"per_minute": 50}

    def geocode_request(self, integration: IntegrationView, address: str,
                        language: str | None) -> OutboundRequest:
        raise NotImplementedError

    def reverse_request(self, integration: IntegrationView, lat: float, lng: float,
                        language: str | None) -> OutboundRequest:
        raise NotImplementedError

    def places(self, body: Any) -> list[dict[str, Any]]:
        """The normalised places of a (successful) geocoder answer, best first."""
        raise NotImplementedError

    def distance_request(self, integration: IntegrationView, origin: Any, destination: Any,
                         language: str | None) -> OutboundRequest | None:
        """The provider's distance API request, or None when none is configured."""
        return None

    def distance_answer(self, body: Any) -> dict[str, Any]:
        raise NotImplementedError

    def exchange(self, integration: IntegrationView, op: Operation,
                 params: Mapping[str, Any]) -> Exchange:
        """One geocoder request for geocode / reverse_geocode; for distance, the
        provider's distance API, else one geocode per address (none for a point)."""
        language = params.get("language")
        if op.name == "geocode":
            return self._first((yield self.geocode_request(integration, params["address"],
                                                           language)))
        if op.name == "reverse_geocode":
            return self._first((yield self.reverse_request(integration, params["lat"],
                                                           params["lng"], language)))
        matrix = self.distance_request(integration, params["origin"], params["destination"],
                                       language)
        if matrix is not None:
            return self.distance_answer((yield matrix))
        origin = yield from self._locate(integration, params["origin"], language)
        destination = yield from self._locate(integration, params["destination"], language)
        found = origin is not None and destination is not None
        return {"distance_m": round(great_circle_m(origin, destination), 1) if found else None,
                "method": "great_circle", "provider": self.provider, "origin": origin,
                "destination": destination}

    def _locate(self, integration: IntegrationView, where: Any,
                language: str | None) -> Exchange:
        if isinstance(where, Mapping):
            return place(self.provider, where["lat"], where["lng"], None, "exact")
        return self._first((yield self.geocode_request(integration, where, language)))

    def _first(self, body: Any) -> dict[str, Any] | None:
        found = self.places(body)
        return found[0] if found else None
