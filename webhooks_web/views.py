"""The routes: receive a webhook, health, readiness, metrics. No logic lives here."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from hub.ops import health
from hub.platform import metrics
from webhooks_web.state import state

bp = Blueprint("webhooks", __name__)


@bp.post("/api/v1/webhooks/<source>/<endpoint_token>")
def receive(source: str, endpoint_token: str) -> tuple[dict[str, Any], int]:
    """Verify, record and enqueue one provider event; 202 once it is committed."""
    receipt = state().intake.receive(source, endpoint_token, request.get_data(cache=False),
                                     request.headers, request.remote_addr)
    if receipt.reply is not None:
        return receipt.reply, 200
    answer: dict[str, Any] = {"id": str(receipt.id) if receipt.id else None,
                              "duplicate": receipt.duplicate}
    if receipt.ignored:
        answer["ignored"] = True
    return answer, 202


@bp.get("/health")
def alive() -> dict[str, str]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@bp.get("/health/ready")
def ready() -> tuple[dict[str, Any], int]:
    """PostgreSQL, Redis and the broker answer (readiness); 503 names the failing ones
    (which, never where or why: the details are logged)."""
    report = health.readiness(state().settings)
    return report, 200 if report["ok"] else 503


@bp.get("/metrics")
def metrics_() -> Response:
    """Prometheus exposition of every metric of this app (all gunicorn workers), and
    the hub's state (queue depths, open events, dead letters) read now."""
    body, content_type = metrics.render(state().state_metrics)
    return Response(body, content_type=content_type)
