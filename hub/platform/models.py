"""SQLAlchemy 2.x models: the tables of DESIGN §3.

Every tenant-owned row carries ``tenant_id``; every query on it is scoped by
tenant (see the repository functions in ``hub.calls.integrations`` and friends).
Secrets are stored only as Fernet tokens (``hub.platform.vault``), never in plain text.
Constraint names are deterministic (``NAMING_CONVENTION``) so migrations can
refer to them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

INTEGRATION_STATUSES = ("active", "disabled", "deleted")
#: healthy: the probe got a 2xx/3xx; degraded: an error status (4xx/5xx); down: no answer.
HEALTH_STATUSES = ("unknown", "healthy", "degraded", "down")
AUTH_TYPES = (
    "none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh",
    "oauth2_authorization_code", "hmac", "google_service_account",
)
#: ``sending``: written (and committed) before a write leaves, then updated to its
#: outcome; ``outcome_unknown``: a request that may have reached the provider whose
#: answer was never recorded (its worker died, or the connection broke after it left).
LOG_OUTCOMES = ("success", "failed", "cached", "rate_limited", "circuit_open", "dead_lettered",
                "sending", "outcome_unknown")
#: ``unknown``: a write of this key may have reached the provider and its answer was
#: lost; repeats fail with OUTCOME_UNKNOWN until an operator replays or resolves its
#: dead letter (``hub dlq replay``, ``hub dlq resolve``).
CALL_RESULT_STATUSES = ("running", "succeeded", "unknown")
EVENT_STATUSES = ("pending", "processing", "processed", "failed", "dead")
DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "failed", "dead", "cancelled")
DEAD_LETTER_ORIGINS = ("call", "webhook", "delivery", "poison")
#: How an operator reconciled an OUTCOME_UNKNOWN dead letter (``hub dlq resolve``):
#: the provider did, or did not, carry out the write.
DEAD_LETTER_RESOLUTIONS = ("succeeded", "failed")
SCHEDULED_STATUSES = ("pending", "enqueued", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4,
                         server_default=text("gen_random_uuid()"))


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                         onupdate=func.now())


TENANT = String(64)


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``xid8``, never wraps around)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


# So reflection (Alembic's model/migration comparison) knows the type too.
postgresql_base.ischema_names["xid8"] = Xid8


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (
        # A deleted integration keeps its row (audit rows, usage and dead letters still
        # name it) and frees its name for a new one.
        Index("uq_integrations_tenant_id_name", "tenant_id", "name", unique=True,
              postgresql_where=text("status <> 'deleted'")),
        CheckConstraint(_in("status", INTEGRATION_STATUSES), name="status"),
        CheckConstraint(_in("health_status", HEALTH_STATUSES), name="health_status"),
        CheckConstraint(_in("auth_type", AUTH_TYPES), name="auth_type"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    adapter: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The adapter's version and its operations' param schemas when the integration
    #: was created (or last upgraded): see hub.adapters.versions.
    adapter_version: Mapped[str | None] = mapped_column(String(32))
    adapter_schema: Mapped[dict[str, Any] | None] = mapped_column()
    base_url: Mapped[str] = mapped_column(Text, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(nullable=False, server_default=text("'{}'"))
    auth_type: Mapped[str] = mapped_column(String(32), nullable=False, server_default="none")
    credentials: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    health_status: Mapped[str] = mapped_column(String(16), nullable=False,
                                               server_default="unknown")
    last_health_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_health_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_health_error: Mapped[str | None] = mapped_column(Text)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    rate_limit_per_hour: Mapped[int | None] = mapped_column(Integer)
    rate_limit_per_day: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    fallback_integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"))
    cost_per_call: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False,
                                                   server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the authorization-code flow last stored tokens (``hub oauth connect``).
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        # credentials deliberately left out: even encrypted, they do not belong in logs.
        return f"<Integration {self.tenant_id}/{self.name} adapter={self.adapter}>"


class OAuthState(Base):
    """One pending authorization-code connect (``hub oauth connect``): single use,
    expiring, bound to its tenant and integration. Only a digest of the ``state``
    is stored; the PKCE verifier is encrypted."""

    __tablename__ = "oauth_states"
    __table_args__ = (
        UniqueConstraint("state_hash"),
        Index(None, "expires_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False)
    code_verifier: Mapped[str] = mapped_column(Text, nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class IntegrationLog(Base):
    __tablename__ = "integration_logs"
    __table_args__ = (
        CheckConstraint(_in("outcome", LOG_OUTCOMES), name="outcome"),
        Index(None, "started_at"),
        Index(None, "tenant_id", "integration_id", "started_at"),
        Index(None, "task_id"),
        # The usage roll-up reads a range of transaction ids; they grow with time, so
        # writers only ever touch the index's right-most page.
        Index(None, "txid"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"))
    operation: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str | None] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    request_headers: Mapped[dict[str, Any] | None] = mapped_column()
    request_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column()
    response_body: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    task_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    estimated_cost: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False,
                                                    server_default="0")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())
    #: On a fallback's row: the integration the caller named, and why it (and any
    #: fallback before this one) did not serve, e.g. "geo-google: rate_limited (...)".
    failover_from: Mapped[str | None] = mapped_column(String(128))
    failover_reason: Mapped[str | None] = mapped_column(Text)
    #: The writing transaction's id, set by PostgreSQL: the usage roll-up counts rows
    #: below the oldest running transaction, so a row committed late is never skipped.
    txid: Mapped[int | None] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))


class CallResult(Base):
    """The stored outcome of a write that carried an idempotency key."""

    __tablename__ = "call_results"
    __table_args__ = (
        UniqueConstraint("tenant_id", "integration_id", "idempotency_key"),
        CheckConstraint(_in("status", CALL_RESULT_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    operation: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    task_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set (with the audit row of the request) before the owner's write leaves;
    #: cleared when the provider's answer is recorded.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_log_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class CacheEntry(Base):
    """Level-2 response cache; Redis is level 1."""

    __tablename__ = "cache_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key_hash"),
        Index(None, "expires_at"),
        Index(None, "tenant_id", "integration_id", "operation"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(128), nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    etag: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    hit_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        UniqueConstraint("token"),
        Index(None, "tenant_id", "source"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    token: Mapped[str] = mapped_column(String(128), nullable=False)
    scheme: Mapped[str] = mapped_column(String(32), nullable=False)
    #: Fernet token of a JSON list of secrets: current first, the previous one
    #: kept during a rotation.
    secret: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(nullable=False, server_default=text("'{}'"))
    tolerance_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="300")
    allowed_ips: Mapped[list[Any]] = mapped_column(nullable=False, server_default=text("'[]'"))
    event_types: Mapped[list[Any]] = mapped_column(nullable=False, server_default=text("'[]'"))
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    received_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    duplicate_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rejected_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    last_received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.tenant_id}/{self.source} scheme={self.scheme}>"


class WebhookEvent(Base):
    """The inbox: one row per accepted provider event, stored before we answer 2xx."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "external_id"),
        CheckConstraint(_in("status", EVENT_STATUSES), name="status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "tenant_id", "received_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column(nullable=False, server_default=text("'{}'"))
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                  server_default=func.now())
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (Index(None, "tenant_id", "active"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    #: Fernet token of a JSON list of ``whsec_`` secrets, current first.
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    event_types: Mapped[list[Any]] = mapped_column(nullable=False, server_default=text("'[]'"))
    retry_schedule: Mapped[list[Any] | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False,
                                                      server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Delivery(Base):
    """One outbound delivery of one event to one subscription."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False)
    #: The Standard Webhooks ``webhook-id``; kept on replays so receivers can dedupe.
    message_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    #: Every POST made, numbered truly across retries and re-sends (delivery_attempts).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    #: ``attempts`` when the current retry schedule started: an operator's re-send
    #: restarts the schedule without renumbering the attempts.
    schedule_from: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response_excerpt: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class DeliveryAttempt(Base):
    """Each HTTP attempt of a delivery, for operators and for the failure window."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index(None, "delivery_id", "attempted_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                   server_default=func.now())


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (
        CheckConstraint(_in("origin", DEAD_LETTER_ORIGINS), name="origin"),
        CheckConstraint(_in("resolution", DEAD_LETTER_RESOLUTIONS), name="resolution"),
        Index(None, "tenant_id", "last_failed_at"),
        Index(None, "error_code"),
        Index(None, "replay_task_id"),
        Index(None, "replay_of"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str | None] = mapped_column(TENANT)
    task_name: Mapped[str] = mapped_column(String(255), nullable=False)
    task_id: Mapped[str | None] = mapped_column(String(64))
    args: Mapped[list[Any]] = mapped_column(nullable=False, server_default=text("'[]'"))
    kwargs: Mapped[dict[str, Any]] = mapped_column(nullable=False, server_default=text("'{}'"))
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    integration: Mapped[str | None] = mapped_column(String(128))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                      server_default=func.now())
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                     server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replay_task_id: Mapped[str | None] = mapped_column(String(64))
    #: The letter whose replay failed again and became this one.
    replay_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("dead_letters.id", ondelete="SET NULL"))
    #: Set by ``hub dlq resolve``: how the operator reconciled the letter, who, when
    #: and why. A resolved letter is closed: it is never replayed.
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class ScheduledTask(Base):
    """A task whose wait is too long for a broker countdown (DESIGN §4).

    Beat enqueues rows whose ``due_at`` has passed; losing Redis loses none of them.
    """

    __tablename__ = "scheduled_tasks"
    __table_args__ = (
        CheckConstraint(_in("status", SCHEDULED_STATUSES), name="status"),
        Index(None, "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str | None] = mapped_column(TENANT)
    task_name: Mapped[str] = mapped_column(String(255), nullable=False)
    kwargs: Mapped[dict[str, Any]] = mapped_column(nullable=False, server_default=text("'{}'"))
    queue: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    task_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Usage(Base):
    """Calls and estimated cost per tenant, integration, operation and UTC day, rolled up
    from ``integration_logs`` by beat (hub.ops.usage); kept after retention deletes the
    audit rows."""

    __tablename__ = "usage"
    __table_args__ = (
        UniqueConstraint("tenant_id", "integration_id", "operation", "day"),
        Index(None, "tenant_id", "day"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False)
    operation: Mapped[str] = mapped_column(String(128), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    calls: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    successes: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cached: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rate_limited: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False, server_default="0")
    updated_at: Mapped[datetime] = _updated()


class UsageRollup(Base):
    """Where the usage roll-up stands: every audit row whose transaction id is below
    ``rolled_below`` is counted in ``usage`` (one row, id 1)."""

    __tablename__ = "usage_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rolled_below: Mapped[int] = mapped_column(Xid8, nullable=False,
                                              server_default=text("'0'::xid8"))
    #: Audit rows written before transaction ids were recorded (txid NULL) are counted.
    legacy_counted: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                 server_default=text("false"))
    rolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BudgetAlert(Base):
    """An integration's monthly budget crossed, announced once per month."""

    __tablename__ = "budget_alerts"
    __table_args__ = (UniqueConstraint("integration_id", "month"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[str] = mapped_column(TENANT, nullable=False)
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    budget: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False)
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False)
    created_at: Mapped[datetime] = _created()
