from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from hub.calls import integrations
from hub.ops import retention
from hub.platform.models import IntegrationLog, ScheduledTask
from hub.platform.scheduler import utcnow


def test_old_audit_rows_go_in_batches_and_recent_ones_stay(services, sessions, tenant):
    now = utcnow()
    with sessions() as session, session.begin():
        row = integrations.create(session, integrations.IntegrationSpec(
            tenant_id=tenant, name="crm", adapter="rest", base_url="https://api.example.com"))
        days = services.settings.log_retention_days
        for age in [days + 1] * 7 + [days - 1] * 2:
            session.add(IntegrationLog(tenant_id=tenant, integration_id=row.id, operation="get",
                                       outcome="success", started_at=now - timedelta(days=age)))
        session.add(ScheduledTask(task_name="hub.ping", due_at=now, status="enqueued",
                                  tenant_id=tenant, created_at=now - timedelta(days=30)))
        # Due tomorrow: an old pending row is kept whenever it is due, and one due now
        # would be sent by any other test's enqueue_due on this shared database.
        session.add(ScheduledTask(task_name="hub.ping", due_at=now + timedelta(days=1),
                                  status="pending", tenant_id=tenant,
                                  created_at=now - timedelta(days=30)))

    deleted = retention.run(services, now=now, batch=3)

    assert deleted["integration_logs"] >= 7
    assert deleted["scheduled_tasks"] >= 1
    with sessions() as session:
        left = session.scalar(select(func.count()).select_from(IntegrationLog)
                              .where(IntegrationLog.tenant_id == tenant))
        pending = session.scalars(select(ScheduledTask.status)
                                  .where(ScheduledTask.tenant_id == tenant)).all()
    assert left == 2
    assert pending == ["pending"]
