"""hub.ops.dlq: replay claims each letter once, even across overlapping operators."""

from __future__ import annotations

from hub.ops import dlq
from hub.platform import deadletters
from hub.platform.dispatch import RecordingDispatcher


def _letters(sessions, tenant, n):  # type: ignore[no-untyped-def]
    with sessions() as session, session.begin():
        return [deadletters.record(session, origin="call", task_name="hub.call",
                                   kwargs={"tenant": tenant, "n": i}, tenant_id=tenant,
                                   error_code="TIMEOUT", error="timed out", attempts=3).id
                 for i in range(n)]


def test_overlapping_replays_send_each_letter_once(sessions, tenant):
    _letters(sessions, tenant, 2)
    filters = dlq.Filters(tenant=tenant, include_replayed=False)
    other = RecordingDispatcher()

    class FirstOperator(RecordingDispatcher):
        def send(self, name, kwargs, **options):  # type: ignore[no-untyped-def,override]
            if not self.sent:  # a second operator runs while we hold our first letter
                dlq.replay(sessions, other, filters, queue="replay")
            return super().send(name, kwargs, **options)

    first = FirstOperator()
    dlq.replay(sessions, first, filters, queue="replay")
    sent = sorted(kwargs["n"] for _name, kwargs, _queue in first.sent + other.sent)
    assert sent == [0, 1]
    assert len(first.sent) == 1 and len(other.sent) == 1


def test_dry_run_sends_nothing_and_lists_matches(sessions, tenant):
    ids = _letters(sessions, tenant, 2)
    dispatcher = RecordingDispatcher()
    shown = dlq.replay(sessions, dispatcher, dlq.Filters(tenant=tenant),
                       queue="replay", dry_run=True)
    assert dispatcher.sent == [] and sorted(v["id"] for v in shown) == sorted(map(str, ids))
    assert all(v["replayed_at"] is None for v in shown)


def test_a_dead_letter_is_stored_whatever_it_holds(services, sessions, tenant):
    # Issue 9 item 7: a NUL in the recorded content made the dead letter itself fail
    # to save (DataError), losing the work a second time.
    kwargs = {"tenant": f"{tenant}\x00", "params": {"note\x00": "a\ud800b", "n": 1},
              "idempotency_key": None}
    letter_id = deadletters.record_and_announce(
        services, origin="call", task_name="hub.call", kwargs=kwargs, tenant_id=f"{tenant}\x00",
        integration="crm\ud800" + "x" * 200, error_code="INTERNAL_ERROR",
        error="bad \x00 input", attempts=5, task_id="task-1", traceback="line\ud800")

    with sessions() as session:
        row = dlq.get(session, letter_id)
    assert row.kwargs == {"tenant": f"{tenant}\ufffd", "idempotency_key": None,
                          "params": {"note\ufffd": "a\ufffdb", "n": 1}}
    assert row.tenant_id == f"{tenant}\ufffd" and row.attempts == 5
    assert row.integration == ("crm\ufffd" + "x" * 200)[:128]
    assert row.error.startswith("bad \ufffd input [stored with characters PostgreSQL refuses")
    assert (row.traceback, row.task_id, row.error_code) == ("line\ufffd", "task-1",
                                                            "INTERNAL_ERROR")


def test_a_clean_dead_letter_is_stored_as_given(services, sessions, tenant):
    kwargs = {"tenant": tenant, "params": {"note": "caf\u00e9 \u2603", "list": [1, "x"]}}
    letter_id = deadletters.record_and_announce(
        services, origin="call", task_name="hub.call", kwargs=kwargs, tenant_id=tenant,
        integration="crm", error_code="TIMEOUT", error="timed out", attempts=5)
    with sessions() as session:
        row = dlq.get(session, letter_id)
    assert (row.kwargs, row.error, row.integration) == (kwargs, "timed out", "crm")
