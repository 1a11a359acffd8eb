"""Usage and cost per tenant, integration, operation and UTC day, rolled up from the audit
trail by beat (DESIGN §3 ``usage``, §8), and monthly budgets.

Nothing is written per call for usage: every ``integration_logs`` row already
carries its outcome and estimated cost, and PostgreSQL stamps it with the id of
the transaction that wrote it (``txid``). The roll-up adds up the rows whose
transaction id lies between where the last run stopped and the oldest transaction
of this database still running: every transaction below it has finished, so no
row can still appear in that range, and a call that commits late (up to the task
time limit after it started) is simply counted by a later run. A transaction left
open in the hub's database holds the roll-up (and retention) back until it ends;
it never makes them skip or double-count a row. The range and the
new position are written in one transaction, so a run counts each row exactly
once, whether it crashes, runs twice or races another beat (the position row is
locked). Retention deletes only audit rows below the position
(:func:`rolled_below_clause`), so usage survives the audit rows it was made from.

A write's row is committed as ``sending`` before the request leaves and given its
outcome later (issue 9 item 2): the roll-up skips ``sending`` rows, and the update
that gives one its outcome stamps it with its own transaction id, so it is counted
once, with that outcome, by the run that covers that transaction.

Counts are of audited attempts: ``calls`` every attempt, ``successes``,
``failures`` (failed, dead-lettered, circuit open, outcome unknown), ``cached`` and
``rate_limited``; ``cost`` is the sum of ``estimated_cost`` (cost_per_call of the
attempts that reached the provider).

A monthly budget per integration (``config.budget.monthly``, in the unit of
``cost_per_call``) publishes ``integration.budget.exceeded`` once per month, the
first time the month's cost goes above it (``budget_alerts`` remembers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hub.calls.integrations import monthly_budget
from hub.platform import events
from hub.platform.db import allow_long_statements, on_commit
from hub.platform.errors import ValidationError
from hub.platform.models import BudgetAlert, Integration, Usage
from hub.platform.services import Services

Grouping = Literal["day", "integration", "operation"]
GROUPINGS: tuple[Grouping, ...] = ("day", "integration", "operation")
COUNTERS = ("calls", "successes", "failures", "cached", "rate_limited")

_POSITION = text("SELECT rolled_below::text, legacy_counted FROM usage_rollup "
                 "WHERE id = 1 FOR UPDATE")
# The oldest transaction of *this database* still running (or, if none, the next id to
# be given out): every transaction of this database below it has finished, so its
# rows are all visible. Transactions of other databases on the same server (another
# service's, a DROP DATABASE) are left out when their owner is known to be connected
# elsewhere; one whose lock is not visible yet counts as ours (the safe side).
_HORIZON = text("""
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s)
SELECT coalesce(
  (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
   WHERE NOT EXISTS (
     SELECT 1 FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
     WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
       AND l.transactionid = x::xid
       AND a.datname IS DISTINCT FROM current_database())),
  (SELECT pg_snapshot_xmax(s) FROM snap))::text
""")

_ADD_UP = text("""
INSERT INTO usage AS u (tenant_id, integration_id, operation, day, calls, successes,
                        failures, cached, rate_limited, cost)
SELECT tenant_id, integration_id, operation, (started_at AT TIME ZONE 'UTC')::date,
       count(*),
       count(*) FILTER (WHERE outcome = 'success'),
       count(*) FILTER (WHERE outcome IN ('failed', 'dead_lettered', 'circuit_open',
                                          'outcome_unknown')),
       count(*) FILTER (WHERE outcome = 'cached'),
       count(*) FILTER (WHERE outcome = 'rate_limited'),
       coalesce(sum(estimated_cost), 0)
FROM integration_logs
WHERE integration_id IS NOT NULL AND outcome <> 'sending'
  AND ((txid >= CAST(:low AS xid8) AND txid < CAST(:high AS xid8))
       OR (:legacy AND txid IS NULL))
GROUP BY 1, 2, 3, 4
ON CONFLICT (tenant_id, integration_id, operation, day) DO UPDATE SET
  calls = u.calls + excluded.calls, successes = u.successes + excluded.successes,
  failures = u.failures + excluded.failures, cached = u.cached + excluded.cached,
  rate_limited = u.rate_limited + excluded.rate_limited, cost = u.cost + excluded.cost,
  updated_at = now()
RETURNING integration_id, day
""")
_ADVANCE = text("UPDATE usage_rollup SET rolled_below = CAST(:high AS xid8), "
                "legacy_counted = true, rolled_at = now() WHERE id = 1")


@dataclass(frozen=True)
class RollupResult:
    groups: int
    budget_alerts: int


def rollup(services: Services) -> RollupResult:
    """Add every audit row written since the last run to ``usage``, exactly once, and
    announce budgets crossed. Returns how many usage rows changed and alerts raised."""
    with services.sessions() as session, session.begin():
        # A roll-up after a long pause adds up many rows: maintenance gets the larger bound.
        allow_long_statements(session, services.settings.db_maintenance_statement_timeout)
        low, legacy_counted = session.execute(_POSITION).one()
        high = session.scalar(_HORIZON)
        touched = session.execute(_ADD_UP, {"low": low, "high": high,
                                            "legacy": not legacy_counted}).all()
        session.execute(_ADVANCE, {"high": high})
        alerts = check_budgets(services, session, {(i, _month(d)) for i, d in touched})
    return RollupResult(len(touched), alerts)


def rolled_below_clause() -> Any:
    """SQL condition true for audit rows already counted in ``usage`` (retention deletes
    nothing else)."""
    return text("(integration_logs.txid < (SELECT rolled_below FROM usage_rollup WHERE id = 1)"
                " OR (integration_logs.txid IS NULL AND "
                "(SELECT legacy_counted FROM usage_rollup WHERE id = 1)))")


# --- budgets ----------------------------------------------------------------------------

def _month(day: date) -> date:
    return day.replace(day=1)


def month_cost(session: Session, integration_id: Any, month: date) -> Decimal:
    """The integration's cost in the UTC calendar month starting ``month``."""
    end = date(month.year + 1, 1, 1) if month.month == 12 else \
        month.replace(month=month.month + 1)
    total = session.scalar(select(func.coalesce(func.sum(Usage.cost), 0)).where(
        Usage.integration_id == integration_id, Usage.day >= month, Usage.day < end))
    return Decimal(total or 0)


def check_budgets(services: Services, session: Session,
                  months: Iterable[tuple[Any, date]]) -> int:
    """For each (integration id, month) whose usage just grew: if the month's cost is
    above the integration's monthly budget and no alert was raised for that month yet,
    record one and publish ``integration.budget.exceeded`` after the commit. Returns
    how many alerts were raised. A malformed budget is skipped (create/update refuse
    one)."""
    raised = 0
    for integration_id, month in sorted(months, key=str):
        row = session.get(Integration, integration_id)
        budget = _budget_or_none(row)
        if row is None or budget is None:
            continue
        cost = month_cost(session, integration_id, month)
        if cost > budget and _record_alert(session, row, month, budget, cost):
            _announce(services, session, row, month, budget, cost)
            raised += 1
    return raised


def _budget_or_none(row: Integration | None) -> Decimal | None:
    try:
        return monthly_budget(row.config) if row is not None else None
    except ValidationError:
        return None


def _record_alert(session: Session, row: Integration, month: date, budget: Decimal,
                  cost: Decimal) -> bool:
    inserted = session.scalar(insert(BudgetAlert).values(
        tenant_id=row.tenant_id, integration_id=row.id, month=month, budget=budget, cost=cost)
        .on_conflict_do_nothing(index_elements=["integration_id", "month"])
        .returning(BudgetAlert.id))
    return inserted is not None


def _announce(services: Services, session: Session, row: Integration, month: date,
              budget: Decimal, cost: Decimal) -> None:
    data = {"integration": row.name, "integration_id": str(row.id),
            "month": month.strftime("%Y-%m"), "budget": str(budget), "cost": str(cost)}
    tenant = row.tenant_id
    on_commit(session, lambda: events.publish(services.events, "budget.exceeded", tenant, data))


# --- reading it (``hub usage``) ----------------------------------------------------------

def report(session: Session, tenant: str, *, since: date, by: Grouping,
           integration_id: Any = None) -> list[dict[str, Any]]:
    """Usage of ``tenant`` from ``since`` (a UTC day) on, summed per day (newest first),
    per integration or per integration and operation (by name). Raises ValidationError
    for an unknown grouping."""
    if by not in GROUPINGS:
        raise ValidationError(f"--by must be one of {', '.join(GROUPINGS)}")
    key_columns: dict[str, list[Any]] = {"day": [Usage.day],
                                         "integration": [Integration.name],
                                         "operation": [Integration.name, Usage.operation]}
    keys = key_columns[by]
    sums = [func.sum(getattr(Usage, c)).label(c) for c in (*COUNTERS, "cost")]
    query = (select(*keys, *sums).join(Integration, Integration.id == Usage.integration_id)
             .where(Usage.tenant_id == tenant, Usage.day >= since)
             .group_by(*keys).order_by(*_ordering(by, keys)))
    if integration_id is not None:
        query = query.where(Usage.integration_id == integration_id)
    names = {"day": ["day"], "integration": ["integration"],
             "operation": ["integration", "operation"]}[by]
    return [_row(names, found) for found in session.execute(query)]


def _ordering(by: Grouping, keys: list[Any]) -> list[Any]:
    # The CLI's convention: what is ordered by time is newest first; names by name.
    return [Usage.day.desc()] if by == "day" else keys


def _row(names: list[str], found: Any) -> dict[str, Any]:
    values = dict(zip(names, found[:len(names)]))
    if "day" in values:
        values["day"] = values["day"].isoformat()
    counts = dict(zip((*COUNTERS, "cost"), found[len(names):]))
    return {**values, **{c: int(counts[c]) for c in COUNTERS}, "cost": str(counts["cost"])}

