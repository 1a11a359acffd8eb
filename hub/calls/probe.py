"""Health check of one integration through its adapter (``hub integrations test``).

The adapter's health request, authenticated like a real call, sent through the
pooled, SSRF-guarded session; quota, breaker and cache are bypassed so a probe
neither spends quota nor is refused by an open circuit.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from hub import adapters
from hub.adapters.base import Adapter, IntegrationView
from hub.calls import auth, http, integrations
from hub.platform import redaction
from hub.platform.errors import HubError
from hub.platform.models import Integration
from hub.platform.services import Services


def probe(services: Services, tenant: str, name: str) -> dict[str, Any]:
    """Send the adapter's health request (authenticated) to the integration, bypassing
    quota, breaker and cache, and report ``{"integration", "ok", "status_code",
    "duration_ms", "error"}``. A provider failure is reported, not raised; raises
    NotFound for an unknown integration.
    """
    with services.sessions() as session:
        row = integrations.get(session, tenant, name)
    adapter = adapters.get(row.adapter)
    started = time.monotonic()
    status, error = None, None
    try:
        status, error = _probe_status(services, row, adapter)
    except HubError as exc:
        error = f"{exc.code}: {exc.message}"
    ok = status is not None and 200 <= status < 400 and error is None
    if status is not None and error is None and not ok:
        error = f"provider answered {status}"
    return {"integration": row.name, "tenant": tenant, "ok": ok, "status_code": status,
            "duration_ms": int((time.monotonic() - started) * 1000), "error": error}


def _probe_status(services: Services, row: Integration,
                  adapter: Adapter) -> tuple[int, str | None]:
    """The health answer's status, and what the adapter finds wrong inside a 2xx body
    (a provider over its quota that still answers 200)."""
    out = adapter.health_request(IntegrationView(row.name, row.base_url, row.config or {}))
    session = http.session_for(str(row.id), services.settings)
    prepared = session.prepare_request(requests.Request(out.method, out.url,
                                                        params=out.params or None,
                                                        headers=out.headers))
    credentials = integrations.credentials_of(services.vault, row)
    auth.strategy_for(services, row, credentials).apply(prepared)
    secrets = redaction.secret_values(credentials)
    response = http.send(session, prepared, services.settings, timeout=10, secrets=secrets)
    problem = adapter.health_error(response.status_code, response.headers, response.content) \
        if 200 <= response.status_code < 300 else None
    return response.status_code, redaction.redact_text(problem, secrets)
