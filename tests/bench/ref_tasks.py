"""The reference of the calls benchmark: a plain Celery task doing the same POST.

``celery -A tests.bench.ref_tasks worker ...`` runs the hub's own app (same
celeryconfig: pool, concurrency, acks_late, events, result backend) with one
more task, ``bench.plain_post``: what a developer would write without the hub,
a module-level ``requests.Session`` (its pool as large as the worker's
concurrency, as the hub's) POSTing the same JSON with the same API key header
and returning the parsed answer. Never imported by the hub or the test suite.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from hub.platform.config import load_settings
from tasks.app import app

__all__ = ["app"]

_session = requests.Session()
_session.mount("http://", HTTPAdapter(pool_maxsize=load_settings().worker_concurrency))


@app.task(name="bench.plain_post")
def plain_post(url: str, body: dict[str, Any], api_key: str) -> dict[str, Any]:
    """POST ``body`` to ``url`` and return the JSON answer (raises on a non-2xx)."""
    response = _session.post(url, json=body, headers={"X-Api-Key": api_key}, timeout=30)
    response.raise_for_status()
    data = response.json() if response.content else None  # a subscriber's 204 has no body
    return {"ok": True, "status_code": response.status_code, "data": data}
