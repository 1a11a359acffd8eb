"""Yandex Geocoder HTTP API 1.x (JSON), seed 001's fallback for Google.

Base URL ``https://geocode-maps.yandex.ru``; every request is
``GET /1.x/?apikey=...&geocode=...&format=json&results=1`` (auth type
``api_key``, credential ``api_key``, sent as ``apikey``). A reverse geocode
sends ``geocode=<longitude>,<latitude>``: Yandex's default order (``sco=longlat``),
and ``Point.pos`` in its answers is also ``"<longitude> <latitude>"``.
Operations and answer shape: :mod:`hub.adapters.geocoding`; ``language`` is sent
as ``lang`` (``ru_RU``, ``en_US``...). Yandex has no distance API on this host:
``distance`` is always great-circle.

Errors come as HTTP statuses with a JSON body ``{"statusCode", "error",
"message"}``: 400 (a missing or malformed parameter) is UPSTREAM_ERROR; 403 is
AUTH_ERROR ("Invalid api key"), except when its message says a limit is spent,
which is RATE_LIMITED like a 429. An empty ``featureMember`` is an empty answer.
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
from hub.platform.errors import HubError, RateLimited

PATH = "/1.x/"
#: GeocoderMetaData.precision -> the normalised precision (Yandex, "Response format").
_PRECISION = {"exact": "exact", "number": "interpolated", "near": "interpolated",
              "range": "interpolated", "street": "street", "other": "area"}


class YandexGeocoderAdapter(GeocodingAdapter):
    name = "yandex_geocoder"
    provider = "yandex"
    auth_defaults: ClassVar[Mapping[str, Any]] = {"in": "query", "name": "apikey"}

    def geocode_request(self, integration: IntegrationView, address: str,
                        language: str | None) -> OutboundRequest:
        return self._get(integration, address, language)

    def reverse_request(self, integration: IntegrationView, lat: float, lng: float,
                        language: str | None) -> OutboundRequest:
        return self._get(integration, f"{lng},{lat}", language)

    @staticmethod
    def _get(integration: IntegrationView, geocode: str,
             language: str | None) -> OutboundRequest:
        query = {"geocode": geocode, "format": "json", "results": "1"}
        if language:
            query["lang"] = language
        return OutboundRequest("GET", join_url(integration.base_url, PATH), params=query)

    def parse_error(self, op: Operation, status: int, headers: Mapping[str, str],
                    content: bytes) -> HubError | None:
        """A 403 whose message speaks of a limit is a spent quota, not a bad key."""
        body = json_body(content)
        message = str(body.get("message", "")) if isinstance(body, Mapping) else ""
        if status == 403 and "limit" in message.lower():
            return RateLimited(f"Yandex Geocoder answered 403: {message[:300]}")
        return None

    def places(self, body: Any) -> list[dict[str, Any]]:
        collection = ((body or {}).get("response") or {}).get("GeoObjectCollection") or {}
        return [self._place(member.get("GeoObject") or {})
                for member in collection.get("featureMember", [])]

    def _place(self, geo: Mapping[str, Any]) -> dict[str, Any]:
        meta = (geo.get("metaDataProperty") or {}).get("GeocoderMetaData") or {}
        lng, lat = (float(v) for v in str((geo.get("Point") or {}).get("pos")).split())
        address = (meta.get("Address") or {}).get("formatted") or meta.get("text")
        return place(self.provider, lat, lng, address,
                     _PRECISION.get(str(meta.get("precision")), "area"))

    def health_request(self, integration: IntegrationView) -> OutboundRequest:
        """A reverse geocode of ``config.health_lnglat`` (default central Moscow)."""
        return self._get(integration, str(integration.config.get("health_lnglat",
                                                                  "37.6176,55.7558")), None)
