"""``create_app(settings=None)``: build as many apps as needed (tests build several)."""

from __future__ import annotations

from celery import Celery
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from celerydispatch import sender_app
from hub.ops import queues, statemetrics
from hub.platform import metrics
from hub.platform.config import Settings, load_settings
from hub.platform.services import Services
from hub.webhooks.intake import Intake
from webhooks_web import errors, views
from webhooks_web.body import body_timeout
from webhooks_web.publisher import RedisTaskPublisher
from webhooks_web.state import WebState

#: A down broker must not hold a request long: the event is already committed and the
#: sweeper re-enqueues it, so one quick retry covers a stale connection and no more.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                        "interval_max": 0.2}

#: The families the web app measures (the OAuth2 callback publishes events), served
#: from its first scrape; the queue, inbox and dead-letter gauges are read at each
#: scrape (hub.ops.statemetrics). The workers own the rest (issue 13 item 19).
METRICS = (metrics.WEBHOOKS_RECEIVED, metrics.WEBHOOK_INGEST_SECONDS,
           metrics.WEBHOOK_INGEST_BATCH, metrics.WEBHOOK_ENQUEUE_FAILURES,
           metrics.EVENTS_DROPPED)


def _sender(settings: Settings) -> Celery:
    import celeryconfig

    # The broker of ``settings`` with its own queue layout (a RabbitMQ broker's quorum
    # queues and topic exchanges), not only its URL over the environment's layout.
    # No "task-sent" monitoring event: it is a second publish per webhook on the hot path,
    # and Flower still sees the task when a worker receives it.
    return sender_app("hub-web", **celeryconfig.broker_settings(settings),
                      broker_connection_timeout=2,
                      task_publish_retry_policy=PUBLISH_RETRY_POLICY,
                      task_send_sent_event=False)


def create_app(settings: Settings | None = None) -> Flask:
    """The webhook app for ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    metrics.own(*METRICS)
    app = Flask(__name__)
    # One byte over the limit. Werkzeug refuses a larger Content-Length before reading
    # (413), but a body without one (chunked) it cuts at MAX_CONTENT_LENGTH without an
    # error: at the limit itself the intake could not tell a body of exactly the limit
    # from a longer one cut there, and stored the cut one (issue 9, item 10). With one
    # byte more to read, the intake's length check sees it and answers 413.
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_body + 1
    # The whole body must arrive within this many seconds (gevent workers): webhooks_web/body.py.
    app.config["WEB_BODY_TIMEOUT"] = body_timeout()
    celery = _sender(settings)
    services = Services(settings, RedisTaskPublisher(celery))
    services.vault  # noqa: B018 - no encryption key must stop start-up, not the first webhook
    state_metrics = statemetrics.StateCollector(services, queues.broker_client(settings),
                                                queues.broker_queues(settings))
    app.extensions["hub"] = WebState(settings, services, Intake(services), celery, state_metrics)
    app.register_blueprint(views.bp)
    errors.register(app)
    if settings.webhook_trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app,  # type: ignore[method-assign]
                                x_for=settings.webhook_trusted_proxies)
    return app

