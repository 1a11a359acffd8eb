"""Settings, read once from the environment into a frozen, typed object.

Every setting the hub knows is declared here with its environment variable and
its default; README.md's configuration table mirrors this module. A malformed
value raises :class:`~hub.platform.errors.ConfigError` with one line naming the variable,
which the entry points print instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet

from hub.platform.errors import ConfigError

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/hub"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Longest sleep of beat between two looks at its schedule (and lock renewals), seconds.
BEAT_TICK = 5

#: Queues of DESIGN §4, before HUB_QUEUE_PREFIX is applied.
QUEUE_NAMES = ("calls", "webhooks", "deliveries", "maintenance", "dead_letter", "replay")


def _int(value: str) -> int:
    return int(value)


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("expected a TCP port, 0-65535")
    return port


def _ip_address(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))  # ValueError names what is wrong


def _float(value: str) -> float:
    return float(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _keys(value: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Never echo the key itself: it is a secret even when malformed.
            raise ValueError(
                f"key #{position} is not a url-safe base64 32-byte Fernet key "
                "(generate one with `hub keys generate`)"
            ) from None
    return keys


def _log_format(value: str) -> str:
    if value not in ("json", "text"):
        raise ValueError("expected json or text")
    return value


def _database_url(value: str) -> str:
    # SQLAlchemy would pick psycopg2 for a bare postgresql:// URL; the hub ships psycopg 3.
    for bare in ("postgresql://", "postgres://"):
        if value.startswith(bare):
            return "postgresql+psycopg://" + value[len(bare):]
    if not value.startswith("postgresql+psycopg://"):
        raise ValueError("expected a postgresql:// or postgresql+psycopg:// URL")
    return value


#: URL schemes redis-py's ``Redis.from_url`` opens (kombu also takes redis+socket://).
REDIS_PY_SCHEMES = ("redis://", "rediss://", "unix://")


def _redis_url(value: str) -> str:
    if not value.startswith((*REDIS_PY_SCHEMES, "redis+socket://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return value


#: URL schemes of an AMQP (RabbitMQ) broker, as kombu names them.
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def _broker_url(value: str) -> str:
    if value.startswith(AMQP_SCHEMES):
        return value
    try:
        return _redis_url(value)
    except ValueError:
        raise ValueError("expected a redis:// (or rediss://, unix://) or an amqp:// "
                         "(RabbitMQ) URL") from None


#: Celery pools a hub worker may run (``HUB_WORKER_POOL``); see README "Workers".
WORKER_POOLS = ("threads", "prefork", "gevent", "solo")


def _pool(value: str) -> str:
    if value not in WORKER_POOLS:
        raise ValueError(f"expected one of {', '.join(WORKER_POOLS)}")
    return value


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("expected a positive integer")
    return number


def _schedule(value: str) -> tuple[float, ...]:
    waits = tuple(float(v) for v in value.split(",") if v.strip())
    if not waits or any(w < 0 for w in waits):
        raise ValueError("expected comma-separated non-negative seconds, e.g. 5,300,1800")
    return waits


def _tenant_schedules(value: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
    raw = json.loads(value or "{}")
    if not isinstance(raw, dict):
        raise ValueError('expected a JSON object {"tenant": [seconds, ...]}')  # noqa: TRY004
    if not all(isinstance(waits, list) for waits in raw.values()):
        raise ValueError("each tenant's schedule must be a JSON list of seconds")
    return tuple((str(t), _schedule(",".join(str(w) for w in waits)))
                 for t, waits in raw.items())


def _env(name: str, parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": name, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every tunable of the hub. Build it with :func:`load_settings`."""

    database_url: str = _env(
        "HUB_DATABASE_URL", _database_url, DEFAULT_DATABASE_URL,
        "PostgreSQL for the hub's tables (and, by default, task results).")
    redis_url: str = _env(
        "HUB_REDIS_URL", _redis_url, DEFAULT_REDIS_URL,
        "Redis for quotas, breaker state, the hot cache and the event bus.")
    broker_url: str = _env(
        "HUB_BROKER_URL", _broker_url, "",
        "Celery broker: Redis, or RabbitMQ (amqp://, quorum queues); defaults to "
        "HUB_REDIS_URL.")
    result_backend: str = _env(
        "HUB_RESULT_BACKEND", str, "",
        "Celery result backend; defaults to db+HUB_DATABASE_URL.")
    encryption_keys: tuple[str, ...] = _env(
        "HUB_ENCRYPTION_KEYS", _keys, (),
        "Comma-separated Fernet keys, current first; every key decrypts. Required.")
    queue_prefix: str = _env(
        "HUB_QUEUE_PREFIX", str, "",
        "Prefix for every queue name (isolates test runs and side-by-side installs).")
    redis_prefix: str = _env(
        "HUB_REDIS_PREFIX", str, "hub:",
        "Prefix for every Redis key and pub/sub channel the hub owns besides the broker's.")
    # Redelivery after a whole worker is killed -9 (Redis broker): kombu restores an
    # unacknowledged message only once it is older than the visibility timeout, so that
    # is the real delay (DESIGN §10). It must outlast every message a live worker holds
    # unacknowledged: a countdown waits in the worker (<= HUB_MAX_COUNTDOWN), then runs
    # (<= HUB_TASK_TIME_LIMIT, acks_late): validate() requires their sum to stay below.
    visibility_timeout: int = _env(
        "HUB_VISIBILITY_TIMEOUT", _int, 300,
        "Redis broker: seconds before an unacknowledged message (its worker killed) is "
        "delivered again; must exceed HUB_MAX_COUNTDOWN + HUB_TASK_TIME_LIMIT.")
    max_countdown: int = _env(
        "HUB_MAX_COUNTDOWN", _int, 60,
        "Longest wait kept as a Celery countdown; longer waits are stored in PostgreSQL.")
    unacked_restore_interval: int = _env(
        "HUB_UNACKED_RESTORE_INTERVAL", _int, 10,
        "Seconds between the broker's sweeps for messages of dead workers.")
    task_soft_time_limit: int = _env(
        "HUB_TASK_SOFT_TIME_LIMIT", _int, 150, "Soft time limit of every task, seconds.")
    task_time_limit: int = _env(
        "HUB_TASK_TIME_LIMIT", _int, 180,
        "Hard time limit of every task, seconds (enforced by the prefork and gevent "
        "pools, not by threads).")
    worker_pool: str = _env(
        "HUB_WORKER_POOL", _pool, "threads",
        "Celery pool of a worker: threads (default: many I/O-bound tasks in flight per "
        "process), prefork, gevent or solo. See README \"Workers\".")
    worker_concurrency: int = _env(
        "HUB_WORKER_CONCURRENCY", _positive, 64,
        "Tasks one worker process runs at once (threads); HTTP and database pools are "
        "sized from it.")
    worker_processes: int = _env(
        "HUB_WORKER_PROCESSES", _int, 0,
        "Worker processes `hub worker` starts (the Procfile's and every recipe's worker); "
        "0: one per CPU it may run on, and one more. Each runs HUB_WORKER_CONCURRENCY tasks "
        "at once.")
    worker_soft_shutdown_timeout: float = _env(
        "HUB_WORKER_SOFT_SHUTDOWN_TIMEOUT", _float, 30.0,
        "Seconds a stopping worker lets running tasks finish before requeueing them.")
    beat_lock_timeout: int = _env(
        "HUB_BEAT_LOCK_TIMEOUT", _int, 30,
        "Seconds the active beat's lock in Redis outlives its last renewal (renewed every "
        "tick): the failover time to a standby beat after the active one is killed.")
    max_receives: int = _env(
        "HUB_MAX_RECEIVES", _int, 3,
        "Deliveries of one message after which it is dead-lettered as poison.")
    http_connect_timeout: float = _env(
        "HUB_HTTP_CONNECT_TIMEOUT", _float, 5.0, "Outbound connect timeout, seconds.")
    http_read_timeout: float = _env(
        "HUB_HTTP_READ_TIMEOUT", _float, 30.0,
        "Outbound read timeout, seconds: the longest silence between two reads.")
    http_response_timeout: float = _env(
        "HUB_HTTP_RESPONSE_TIMEOUT", _float, 90.0,
        "Longest time one outbound response may take from the request to its last byte, "
        "seconds: a provider trickling its body a byte at a time cannot hold a worker "
        "thread past it (the threads pool enforces no task time limit).")
    http_max_response_bytes: int = _env(
        "HUB_HTTP_MAX_RESPONSE_BYTES", _int, 10 * 1024 * 1024,
        "Largest provider response body read, bytes.")
    allow_private_networks: bool = _env(
        "HUB_ALLOW_PRIVATE_NETWORKS", _bool, False,
        "Allow outbound requests to private, loopback and link-local addresses.")
    webhook_max_body: int = _env(
        "HUB_WEBHOOK_MAX_BODY", _int, 1024 * 1024, "Largest accepted webhook body, bytes.")
    webhook_trusted_proxies: int = _env(
        "HUB_WEBHOOK_TRUSTED_PROXIES", _int, 0,
        "Reverse proxies in front of the webhook app whose X-Forwarded-For is trusted "
        "(for IP allow-lists); 0 uses the peer address.")
    public_url: str = _env(
        "HUB_PUBLIC_URL", str, "http://127.0.0.1:8000",
        "Base URL providers use to reach the webhook app (printed in endpoint URLs).")
    event_stream_maxlen: int = _env(
        "HUB_EVENT_STREAM_MAXLEN", _int, 100_000,
        "Events kept in the Redis Stream <HUB_REDIS_PREFIX>events for consumer groups "
        "(trimmed approximately: MAXLEN ~).")
    event_publish_timeout: float = _env(
        "HUB_EVENT_PUBLISH_TIMEOUT", _float, 1.0,
        "Seconds one event publish may wait for Redis before the event is dropped.")
    oauth_state_ttl: int = _env(
        "HUB_OAUTH_STATE_TTL", _int, 600,
        "Seconds an authorization link printed by `hub oauth connect` stays valid "
        "(its state is single use).")
    log_retention_days: int = _env(
        "HUB_LOG_RETENTION_DAYS", _int, 90, "Days integration_logs rows are kept.")
    db_statement_timeout: float = _env(
        "HUB_DB_STATEMENT_TIMEOUT", _float, 30.0,
        "Longest one statement of the hub's own PostgreSQL pool may run, seconds (then it "
        "fails: a call retries it as a database outage); 0: no bound.")
    db_lock_timeout: float = _env(
        "HUB_DB_LOCK_TIMEOUT", _float, 10.0,
        "Longest a statement of that pool waits for a lock, seconds; 0: no bound.")
    db_connect_timeout: float = _env(
        "HUB_DB_CONNECT_TIMEOUT", _float, 5.0,
        "Longest a new PostgreSQL connection of the hub may take, seconds; 0: no bound.")
    db_maintenance_statement_timeout: float = _env(
        "HUB_DB_MAINTENANCE_STATEMENT_TIMEOUT", _float, 600.0,
        "The statement bound of the maintenance work that legitimately runs long "
        "(retention deletes, usage roll-up), seconds; 0: no bound. Migrations (`hub db "
        "upgrade`) run on a connection of their own, unbounded.")
    log_level: str = _env("HUB_LOG_LEVEL", str, "INFO", "Log level of every process.")
    log_format: str = _env(
        "HUB_LOG_FORMAT", _log_format, "json",
        "json (one object per line, with task id, tenant, correlation id) or text.")
    worker_metrics_address: str = _env(
        "HUB_WORKER_METRICS_ADDRESS", _ip_address, "127.0.0.1",
        "Address the worker metrics server binds (an IP literal): loopback by default; "
        "0.0.0.0 or a private interface's address for a Prometheus on another host.")
    worker_metrics_port: int = _env(
        "HUB_WORKER_METRICS_PORT", _port, 0,
        "Port where a Celery worker serves Prometheus /metrics for all its pool "
        "processes (calls, cache, breaker, deliveries...); 0: not served.")
    webhook_pending_after: int = _env(
        "HUB_WEBHOOK_PENDING_AFTER", _int, 60,
        "Seconds a webhook event may stay pending before beat re-enqueues it (lost enqueue).")
    webhook_max_attempts: int = _env(
        "HUB_WEBHOOK_MAX_ATTEMPTS", _int, 8,
        "Processing attempts of a webhook event before it is dead-lettered.")
    webhook_retry_base: float = _env(
        "HUB_WEBHOOK_RETRY_BASE", _float, 10.0,
        "Wait before the first retry of a failed webhook event, doubled per attempt (<= 1 h).")
    delivery_retry_schedule: tuple[float, ...] = _env(
        "HUB_DELIVERY_RETRY_SCHEDULE", _schedule, (5, 300, 1800, 7200, 18000, 36000, 36000),
        "Waits between outbound delivery attempts, seconds (Standard Webhooks schedule).")
    delivery_tenant_schedules: tuple[tuple[str, tuple[float, ...]], ...] = _env(
        "HUB_DELIVERY_TENANT_SCHEDULES", _tenant_schedules, (),
        'Per-tenant delivery schedules, JSON {"tenant": [seconds, ...]}.')
    delivery_jitter: float = _env(
        "HUB_DELIVERY_JITTER", _float, 0.2, "Relative jitter applied to each delivery wait.")
    delivery_timeout: float = _env(
        "HUB_DELIVERY_TIMEOUT", _float, 15.0, "Timeout of one outbound delivery, seconds.")
    delivery_disable_after: int = _env(
        "HUB_DELIVERY_DISABLE_AFTER", _int, 5 * 24 * 3600,
        "Seconds of only failures after which a subscription is disabled.")

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_is_amqp(self) -> bool:
        """True for a RabbitMQ broker (quorum queues, no visibility timeout)."""
        return self.effective_broker_url.startswith(AMQP_SCHEMES)

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or "db+" + self.database_url

    def queue(self, name: str) -> str:
        """The broker queue name for one of :data:`QUEUE_NAMES`."""
        return self.queue_prefix + name

    def redis_key(self, *parts: str) -> str:
        """A Redis key (or channel) in the hub's namespace."""
        return self.redis_prefix + ":".join(parts)

    @property
    def event_stream(self) -> str:
        """The Redis Stream every event is appended to (``hub:events`` by default)."""
        return self.redis_key("events")

    def delivery_schedule(self, tenant: str) -> tuple[float, ...]:
        """The delivery retry schedule of ``tenant`` (its own, else the default)."""
        return dict(self.delivery_tenant_schedules).get(tenant, self.delivery_retry_schedule)

    def require_encryption_keys(self) -> tuple[str, ...]:
        """Return the keys, or raise ConfigError naming HUB_ENCRYPTION_KEYS."""
        if not self.encryption_keys:
            raise ConfigError(
                "HUB_ENCRYPTION_KEYS is not set: give one or more Fernet keys, comma-separated "
                "(generate one with `hub keys generate`)")
        return self.encryption_keys

    def validate(self) -> Settings:
        """Check settings that depend on each other; return self."""
        held = self.max_countdown + self.task_time_limit
        if not self.broker_is_amqp and held >= self.visibility_timeout:
            raise ConfigError(
                f"HUB_MAX_COUNTDOWN + HUB_TASK_TIME_LIMIT ({self.max_countdown}s + "
                f"{self.task_time_limit}s) must stay below HUB_VISIBILITY_TIMEOUT "
                f"({self.visibility_timeout}s): a Redis broker delivers again a message "
                "held unacknowledged longer than that, countdown included (celery#2599)")
        if self.beat_lock_timeout < 3 * BEAT_TICK:
            raise ConfigError(
                f"HUB_BEAT_LOCK_TIMEOUT ({self.beat_lock_timeout}s) must be at least "
                f"{3 * BEAT_TICK}s (three beat ticks), or a busy beat loses its lock")
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ConfigError("HUB_TASK_SOFT_TIME_LIMIT must be below HUB_TASK_TIME_LIMIT")
        return self


def setting_fields() -> list[dataclasses.Field[Any]]:
    """The declared settings, for documentation and ``hub config``."""
    return list(dataclasses.fields(Settings))


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``) plus explicit overrides.

    Raises ConfigError naming the first malformed variable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in setting_fields():
        name = f.metadata["env"]
        raw = environ.get(name)
        if raw is None or f.name in overrides:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise ConfigError(f"{name} is malformed: {exc}") from None
    values.update(overrides)
    return Settings(**values).validate()


def settings_table() -> str:
    """The Markdown table of every setting, as README.md shows it."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in setting_fields():
        default = f.default
        if isinstance(default, tuple):  # written as the variable takes it: comma-separated
            default = ",".join(str(v) for v in default)
        shown = "(none)" if default == "" else f"`{default}`"
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
