"""Usage roll-up: audit rows counted exactly once per tenant, integration, operation and
day, even when a call commits late; kept after retention; monthly budgets announced once."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, pool, select, text

from hub.calls import audit, integrations
from hub.calls.integrations import IntegrationSpec
from hub.dev.embedded import with_database
from hub.ops import retention, usage
from hub.platform.errors import ValidationError
from hub.platform.models import IntegrationLog, UsageRollup
from hub.platform.scheduler import utcnow

BASE = "http://127.0.0.1:9"


def _integration(sessions, tenant, name="crm", cost="0.01", config=None):
    with sessions() as session, session.begin():
        return integrations.create(session, IntegrationSpec(
            tenant_id=tenant, name=name, adapter="rest", base_url=BASE,
            cost_per_call=Decimal(cost), config=config)).id


def _audit(session, tenant, integration_id, outcome, *, operation="get", cost="0.01",
           started_at=None, reached=True):
    audit.write(session, audit.Attempt(
        tenant_id=tenant, integration_id=integration_id, operation=operation, outcome=outcome,
        started_at=started_at or utcnow(), reached_provider=reached),
        cost_per_call=Decimal(cost))


def _report(sessions, tenant, by="operation", since=date(2000, 1, 1)):
    with sessions() as session:
        return usage.report(session, tenant, since=since, by=by)


def _rolled_until(services, sessions, tenant, expected_calls, by="operation", timeout=30.0):
    """Roll up until ``tenant``'s calls add up to ``expected_calls``: the roll-up stops at
    the oldest transaction running on the server, which another session may hold a while."""
    deadline = time.monotonic() + timeout
    while True:
        usage.rollup(services)
        rows = _report(sessions, tenant, by=by)
        if sum(r["calls"] for r in rows) >= expected_calls or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_outcomes_and_cost_are_counted_once(services, sessions, tenant):
    crm = _integration(sessions, tenant)
    with sessions() as session, session.begin():
        for outcome in ("success", "success", "failed", "dead_lettered", "cached",
                        "rate_limited", "circuit_open"):
            _audit(session, tenant, crm, outcome, reached=outcome not in (
                "cached", "rate_limited", "circuit_open"))
        _audit(session, tenant, crm, "success", operation="post")

    rows = _rolled_until(services, sessions, tenant, 8)
    usage.rollup(services)  # again: nothing new, nothing counted twice
    again = _report(sessions, tenant)

    assert rows == again == [
        {"integration": "crm", "operation": "get", "calls": 7, "successes": 2, "failures": 3,
         "cached": 1, "rate_limited": 1, "cost": "0.040000"},
        {"integration": "crm", "operation": "post", "calls": 1, "successes": 1, "failures": 0,
         "cached": 0, "rate_limited": 0, "cost": "0.010000"},
    ]


def test_a_call_committing_late_is_counted_by_a_later_run(services, sessions, tenant):
    crm = _integration(sessions, tenant)
    late = sessions()
    late.begin()
    _audit(late, tenant, crm, "success")  # written, not yet committed (a slow call)
    with sessions() as session, session.begin():
        _audit(session, tenant, crm, "failed")  # a later transaction, committed first

    usage.rollup(services)
    assert _report(sessions, tenant) == []  # nothing past the open transaction yet

    late.commit()
    late.close()
    [row] = _rolled_until(services, sessions, tenant, 2)
    assert (row["calls"], row["successes"], row["failures"]) == (2, 1, 1)


def test_an_open_transaction_in_another_database_does_not_hold_the_rollup(services, sessions,
                                                                          tenant):
    crm = _integration(sessions, tenant)
    # Another service's database on the same server, with a transaction left open.
    other = create_engine(with_database(services.settings.database_url, "postgres"),
                          poolclass=pool.NullPool)
    with other.connect() as elsewhere:
        elsewhere.execute(text("SELECT pg_current_xact_id()"))  # it now holds an xid
        with sessions() as session, session.begin():
            _audit(session, tenant, crm, "success")

        usage.rollup(services)

        assert [r["calls"] for r in _report(sessions, tenant)] == [1]
        elsewhere.rollback()
    other.dispose()


def test_days_are_utc_days_and_since_filters_them(services, sessions, tenant):
    crm = _integration(sessions, tenant)
    yesterday = datetime.now(UTC).replace(hour=23, minute=59) - timedelta(days=1)
    with sessions() as session, session.begin():
        _audit(session, tenant, crm, "success", started_at=yesterday)
        _audit(session, tenant, crm, "success", started_at=yesterday)
        _audit(session, tenant, crm, "success")

    by_day = _rolled_until(services, sessions, tenant, 3, by="day")

    assert [(r["day"], r["calls"]) for r in by_day] == [  # newest first
        (datetime.now(UTC).date().isoformat(), 1), (yesterday.date().isoformat(), 2)]
    today = _report(sessions, tenant, by="day", since=datetime.now(UTC).date())
    assert [r["calls"] for r in today] == [1]


def test_retention_keeps_rows_not_rolled_up_and_usage_outlives_the_audit(services, sessions,
                                                                         tenant):
    crm = _integration(sessions, tenant)
    old = utcnow() - timedelta(days=services.settings.log_retention_days + 5)
    late = sessions()
    late.begin()
    _audit(late, tenant, crm, "success", started_at=old)  # old, not committed yet
    with sessions() as session, session.begin():
        for _ in range(3):
            _audit(session, tenant, crm, "success", started_at=old)

    retention.run(services)
    with sessions() as session:
        kept = session.scalar(select(func.count()).select_from(IntegrationLog)
                              .where(IntegrationLog.tenant_id == tenant))
    assert kept == 3  # past retention, but not counted yet: kept

    late.commit()
    late.close()
    _rolled_until(services, sessions, tenant, 4)
    retention.run(services)
    with sessions() as session:
        left = session.scalar(select(func.count()).select_from(IntegrationLog)
                              .where(IntegrationLog.tenant_id == tenant))
        position = session.get(UsageRollup, 1)
    assert left == 0
    assert position is not None and position.legacy_counted
    [row] = _report(sessions, tenant)
    assert (row["calls"], row["cost"]) == (4, "0.040000")


def test_a_monthly_budget_is_announced_once_when_crossed(services, sessions, tenant):
    crm = _integration(sessions, tenant, config={"budget": {"monthly": "0.025"}})
    pubsub = services.redis.pubsub()
    pubsub.subscribe("integration.budget.exceeded")
    pubsub.get_message(timeout=1)

    with sessions() as session, session.begin():
        _audit(session, tenant, crm, "success")
        _audit(session, tenant, crm, "success")
    _rolled_until(services, sessions, tenant, 2)  # 0.02: under budget
    # One more call crosses it (0.03); two more stay over it (0.05): no second alert.
    for more, total in ((1, 3), (2, 5)):
        with sessions() as session, session.begin():
            for _ in range(more):
                _audit(session, tenant, crm, "success")
        _rolled_until(services, sessions, tenant, total)

    announced = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.3)
        if message and message["type"] == "message":
            event = json.loads(message["data"])
            if event["tenant"] == tenant:
                announced.append(event["data"])
    pubsub.close()
    assert len(announced) == 1
    assert announced[0]["integration"] == "crm" and announced[0]["budget"] == "0.025"
    assert announced[0]["cost"] == "0.030000"
    assert announced[0]["month"] == utcnow().strftime("%Y-%m")


def test_a_malformed_budget_is_refused_at_registration(sessions, tenant):
    with pytest.raises(ValidationError, match="budget.monthly"):
        _integration(sessions, tenant, config={"budget": {"monthly": "lots"}})


def test_a_write_audited_before_it_left_is_counted_once_with_its_outcome(services, sessions,
                                                                          tenant):
    # Issue 9 item 2: a write's row is committed `sending` before the request leaves and
    # given its outcome later; a roll-up in between must neither count it as it stood
    # nor miss it afterwards.
    crm = _integration(sessions, tenant)
    with sessions() as session, session.begin():
        row = audit.write(session, audit.Attempt(
            tenant_id=tenant, integration_id=crm, operation="post", outcome="sending",
            started_at=utcnow()), cost_per_call=Decimal("0.01"))
    with sessions() as session, session.begin():
        _audit(session, tenant, crm, "success")  # another call, so the roll-up moves on
    assert _rolled_until(services, sessions, tenant, 1)[0]["calls"] == 1

    with sessions() as session, session.begin():
        audit.finish(session, row.id, audit.Attempt(
            tenant_id=tenant, integration_id=crm, operation="post", outcome="success",
            started_at=row.started_at, reached_provider=True), cost_per_call=Decimal("0.01"))
    rows = _rolled_until(services, sessions, tenant, 2)
    usage.rollup(services)

    assert _report(sessions, tenant) == rows == [
        {"integration": "crm", "operation": "get", "calls": 1, "successes": 1, "failures": 0,
         "cached": 0, "rate_limited": 0, "cost": "0.010000"},
        {"integration": "crm", "operation": "post", "calls": 1, "successes": 1, "failures": 0,
         "cached": 0, "rate_limited": 0, "cost": "0.010000"},
    ]
