"""GET /health, /health/ready and /metrics of the webhook app."""

from __future__ import annotations

import dataclasses

from tests.webhooks_web.conftest import close_app
from webhooks_web import create_app


def test_health_answers_without_touching_dependencies(client):
    assert client.get("/health").json == {"status": "ok"}


def test_ready_checks_postgres_redis_and_broker(client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert set(response.json["checks"]) == {"postgres", "redis", "broker"}
    assert all(check["ok"] for check in response.json["checks"].values())


def test_ready_is_503_naming_the_broker_when_it_is_down(broker_down_app):
    response = broker_down_app.test_client().get("/health/ready")

    assert response.status_code == 503
    checks = response.json["checks"]
    assert (checks["broker"]["ok"], checks["postgres"]["ok"], checks["redis"]["ok"]) == (
        False, True, True)


def test_ready_is_503_naming_postgres_when_it_is_down(web_settings, free_port):
    app = create_app(dataclasses.replace(
        web_settings, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port}/hub"))
    try:
        response = app.test_client().get("/health/ready")
    finally:
        close_app(app)

    assert response.status_code == 503
    assert response.json["checks"]["postgres"]["ok"] is False


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert "# TYPE hub_webhooks_received_total counter" in response.get_data(as_text=True)
