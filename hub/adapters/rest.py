"""The generic REST adapter: any method and path under the integration's base URL.

Operations (params in brackets are optional):

- ``request``: ``method``, ``path`` [``query``, ``json``, ``headers``] - any method
- ``get``: ``path`` [``query``, ``headers``] - cacheable (``config.cache_ttl``, default 60 s)
- ``post`` / ``put`` / ``patch`` / ``delete``: ``path`` [``query``, ``json``, ``headers``]

``path`` is relative to the base URL and may not leave it. Caller headers may
not set ``Authorization`` or ``Host``: authentication is the hub's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.adapters.base import (
    Adapter,
    IntegrationView,
    Operation,
    OutboundRequest,
    join_url,
)
from hub.adapters.transform import closed_object
from hub.platform.errors import ValidationError

DEFAULT_CACHE_TTL = 60
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length"})

_COMMON = {
    "path": {"type": "string", "minLength": 1, "maxLength": 2048},
    "query": {"type": "object",
              "additionalProperties": {"type": ["string", "number", "boolean", "array"]}},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
}


def _schema(*, with_body: bool, with_method: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = dict(_COMMON)
    required = ["path"]
    if with_body:
        properties["json"] = {}
    if with_method:
        properties["method"] = {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                         "OPTIONS", "get", "head", "post", "put", "patch",
                                         "delete", "options"]}
        required.append("method")
    return closed_object(properties, required)


class RestAdapter(Adapter):
    name = "rest"
    operations = (
        Operation("request", method="*", path="{path}",
                  params_schema=_schema(with_body=True, with_method=True), idempotent=False,
                  description="Any method and path under the base URL."),
        Operation("get", method="GET", path="{path}", params_schema=_schema(with_body=False),
                  cacheable=True, cache_ttl=DEFAULT_CACHE_TTL, description="GET, cacheable."),
        Operation("post", method="POST", path="{path}", params_schema=_schema(with_body=True)),
        Operation("put", method="PUT", path="{path}", params_schema=_schema(with_body=True)),
        Operation("patch", method="PATCH", path="{path}", params_schema=_schema(with_body=True),
                  idempotent=False),
        Operation("delete", method="DELETE", path="{path}",
                  params_schema=_schema(with_body=True)),
    )

    def build_request(self, integration: IntegrationView, op: Operation,
                      params: Mapping[str, Any]) -> OutboundRequest:
        """Method from the operation (or ``params.method``), path under the base URL."""
        method = str(params.get("method") or op.method).upper()
        headers = dict(params.get("headers") or {})
        reserved = sorted(h for h in headers if h.lower() in _RESERVED_HEADERS)
        if reserved:
            raise ValidationError(f"header(s) {', '.join(reserved)} are set by the hub")
        return OutboundRequest(method=method,
                               url=join_url(integration.base_url, str(params["path"])),
                               params=dict(params.get("query") or {}), headers=headers,
                               json=params.get("json"))
