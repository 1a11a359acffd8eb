"""The routes: receive a webhook, the OAuth2 callback, health, readiness, metrics. No
logic lives here."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from hub.calls.auth import connect
from hub.ops import health
from hub.platform import metrics
from webhooks_web import oauthpage
from webhooks_web.body import read_body
from webhooks_web.state import state

bp = Blueprint("webhooks", __name__)


@bp.post("/api/v1/webhooks/<source>/<endpoint_token>")
def receive(source: str, endpoint_token: str) -> tuple[dict[str, Any], int]:
    """Verify, record and enqueue one provider event; 202 once it is committed."""
    body = read_body(request, current_app.config["WEB_BODY_TIMEOUT"])
    receipt = state().intake.receive(source, endpoint_token, body, request.headers,
                                     request.remote_addr)
    if receipt.reply is not None:
        return receipt.reply, 200
    answer: dict[str, Any] = {"id": str(receipt.id) if receipt.id else None,
                              "duplicate": receipt.duplicate}
    if receipt.ignored:
        answer["ignored"] = True
    return answer, 202


@bp.get("/oauth/callback")
def oauth_callback() -> Response:
    """The provider's redirect after a person granted or refused access (DESIGN §5):
    exchange the code, store the tokens; a page (or JSON when asked) says what happened."""
    outcome = connect.complete(state().services, request.args)
    wants_json = request.accept_mimetypes.best_match(
        ["text/html", "application/json"]) == "application/json"
    return oauthpage.render(outcome, as_json=wants_json)


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
