"""Celery settings, computed once from hub/config.py (HUB_* environment variables).

Standard lowercase Celery settings only; loaded by ``tasks.app`` and by any
process that only sends tasks (the webhook app). See README "Reliability" for
why each guardrail is here.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from hub.platform.config import BEAT_TICK, QUEUE_NAMES, Settings, load_settings
from hub.platform.db import hub_bounds

settings = load_settings()

result_backend = settings.effective_result_backend
if result_backend.startswith("db+postgresql"):
    # Same table and encoding as Celery's database backend (what clients read with
    # "db+postgresql+psycopg://..."), written by a pooled, batched upsert: see
    # celeryresults.py.
    database_url = result_backend[len("db+"):]
    result_backend = "celeryresults:HubDatabaseBackend"
# Bounded as the hub's own pool (HUB_DB_*_TIMEOUT): a result write or read stuck
# behind a lock or a hung server fails (the writer then logs PostgreSQL unavailable)
# instead of holding a worker thread for ever.
database_engine_options = {
    "pool_pre_ping": True, "pool_size": 2, "max_overflow": 4,
    "connect_args": hub_bounds(settings)}
database_short_lived_sessions = False
result_expires = 24 * 3600
result_extended = True

# JSON only: pickle from a broker is remote code execution.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Many I/O-bound tasks in flight per process (issue 10; README "Workers"): provider
# calls and deliveries spend their time waiting for the network. The threads pool
# enforces no time limits: every task bounds its own duration (HTTP, lock and
# statement timeouts).
worker_pool = settings.worker_pool
worker_concurrency = settings.worker_concurrency

# A task is acknowledged after it ran; a worker killed mid-task gets it redelivered.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_soft_time_limit = settings.task_soft_time_limit
task_time_limit = settings.task_time_limit
# No STARTED write per task: it doubles result-backend writes (see docs/benchmarks.md);
# Flower sees started tasks through events, and attempts are in integration_logs.
task_track_started = False
task_send_sent_event = True
# Task events (received, started, succeeded... one Redis PUBLISH each) cost a worker
# about 5 % of its CPU per task, and nothing of the hub reads them: they are for
# Flower, which turns them on itself in every worker it sees (its enable_events
# broadcast, every 5 s while it runs; README "Flower"). Events stay on in a worker
# once Flower enabled them; `celery -A tasks control disable_events` turns them off.
worker_send_task_events = False
# On a broker blip a running task goes on and records its outcome. Cancelling it
# (Celery's option) killed deliveries mid-POST, left their rows `delivering` and beat
# re-sent them a lease later: the subscriber got the webhook twice, 75 s apart (issue 9,
# item 6). Every hub task is guarded in PostgreSQL (delivery lease, inbox row lock,
# idempotency claim), so a copy the broker hands out again meanwhile does nothing.
worker_cancel_long_running_tasks_on_connection_loss = False
broker_connection_retry_on_startup = True
# Soft shutdown: on SIGTERM running tasks get this long, then are requeued (Celery >= 5.5).
worker_soft_shutdown_timeout = settings.worker_soft_shutdown_timeout
worker_enable_soft_shutdown_on_idle = True

timezone = "UTC"
enable_utc = True

def broker_settings(hub: Settings) -> dict[str, Any]:
    """The Celery settings that depend on the broker: queues, exchanges, transport.

    Also used by tests and clients that talk to another broker than this process's.
    """
    if hub.broker_is_amqp:
        # RabbitMQ: quorum queues (replicated, durable) and publisher confirms; a consumer
        # that dies hands its unacknowledged messages back at once (no visibility
        # timeout). Countdowns use Celery's native delayed delivery (TTL'd delay queues
        # in RabbitMQ, not held by a worker), which needs topic exchanges.
        kind, arguments = "topic", {"x-queue-type": "quorum"}
        extra: dict[str, Any] = {
            "task_default_queue_type": "quorum", "task_default_exchange_type": "topic",
            "task_create_missing_queue_type": "quorum",
            "task_create_missing_queue_exchange_type": "topic",
            "broker_native_delayed_delivery_queue_type": "quorum",
            "broker_transport_options": {"confirm_publish": True}}
    else:
        kind, arguments = "direct", None
        extra = {"broker_transport_options": {
            # A message not acknowledged within this many seconds is delivered again: the
            # redelivery delay after a worker is killed -9. A live worker holds a message
            # at most HUB_MAX_COUNTDOWN (countdown) + HUB_TASK_TIME_LIMIT (run, acks_late);
            # settings.validate() keeps that below it. Longer waits live in PostgreSQL.
            "visibility_timeout": hub.visibility_timeout,
            # How soon messages of a killed worker are swept back (kombu's default ~100 s).
            "unacked_restore_interval": hub.unacked_restore_interval,
            "unacked_restore_throttle": 1,
        }}
    # For redis://, kombu's transport keeping one client object per channel
    # (celerytransport.py); otherwise the URL's scheme chooses, also where these
    # settings replace a redis:// broker's.
    extra["broker_transport"] = ("celerytransport:Transport"
                                 if hub.effective_broker_url.startswith("redis://") else None)
    default = hub.queue("celery")
    exchange = Exchange(hub.queue("hub"), type=kind)
    queues = [Queue(default, Exchange(default, type=kind), routing_key=default,
                    queue_arguments=arguments)] + [
        Queue(hub.queue(name), exchange, routing_key=hub.queue(name),
              queue_arguments=arguments)
        for name in QUEUE_NAMES]
    return {"broker_url": hub.effective_broker_url, "task_default_queue": default,
            "task_default_exchange": default, "task_default_routing_key": default,
            "task_queues": queues, **extra}


globals().update(broker_settings(settings))

_PREFIX_QUEUES = (
    ("hub.webhooks.", "webhooks"),
    ("hub.deliveries.", "deliveries"),
    ("hub.maintenance.", "maintenance"),
    ("hub.dead_letter.", "dead_letter"),
)


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> dict[str, str] | None:
    """Route by stable task name (DESIGN §4); adapter operations go to ``calls``.

    A queue the sender names (``queue="replay"``) wins whole: merged with a route,
    it kept the route's routing key and the message went to the routed queue
    (replays landed among live deliveries, and a named queue on RabbitMQ got nothing).
    """
    if options.get("queue"):
        return None
    for prefix, queue in _PREFIX_QUEUES:
        if name.startswith(prefix):
            return {"queue": settings.queue(queue), "routing_key": settings.queue(queue)}
    if name == "hub.call" or (name.startswith("hub.") and name.count(".") == 2):
        return {"queue": settings.queue("calls"), "routing_key": settings.queue("calls")}
    return None


task_routes = (route_task,)

# One beat at a time: redbeat holds a lock in Redis, so a second beat waits. The hub's
# subclass rides out a Redis outage or FLUSHALL (reconnects, takes the lock back, puts
# its schedule back) instead of exiting; see tasks/beat.py.
beat_scheduler = "tasks.beat:HubBeatScheduler"
redbeat_redis_url = settings.redis_url
redbeat_key_prefix = settings.redis_key("redbeat")
# A standby beat takes over this long after the active one died (kill -9, lost host).
redbeat_lock_timeout = settings.beat_lock_timeout
beat_max_loop_interval = BEAT_TICK
# A Redis that stops answering (rather than refusing) must not hang a tick for ever.
redbeat_redis_options = {"socket_timeout": 5, "socket_connect_timeout": 5}

beat_schedule: dict[str, dict[str, Any]] = {
    "health-checks": {
        "task": "hub.maintenance.health_checks",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "retention": {
        "task": "hub.maintenance.retention",
        "schedule": 3600.0,
        "options": {"expires": 1800},
    },
    # Usage and cost per day from the audit rows (no write per call); budgets.
    "usage-rollup": {
        "task": "hub.maintenance.usage_rollup",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "enqueue-due-scheduled-tasks": {
        "task": "hub.maintenance.enqueue_due",
        "schedule": 5.0,
        "options": {"expires": 30},
    },
    # Nothing stays stuck in the inbox: lost enqueues and failed events now due.
    "sweep-webhook-events": {
        "task": "hub.maintenance.sweep_webhook_events",
        "schedule": 10.0,
        "options": {"expires": 30},
    },
    # Delivery retries wait in PostgreSQL (deliveries.next_attempt_at), not in the broker.
    "send-due-deliveries": {
        "task": "hub.maintenance.send_due_deliveries",
        "schedule": 5.0,
        "options": {"expires": 30},
    },
}
