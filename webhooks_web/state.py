"""What the views need, built once per app (per gunicorn worker process)."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app

from hub.ops.statemetrics import StateCollector
from hub.platform.config import Settings
from hub.platform.services import Services
from hub.webhooks.intake import Intake


@dataclass
class WebState:
    settings: Settings
    services: Services
    intake: Intake
    celery: Celery
    state_metrics: StateCollector


def state() -> WebState:
    """The current app's WebState."""
    return current_app.extensions["hub"]
