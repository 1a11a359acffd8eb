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
