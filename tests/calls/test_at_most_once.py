"""Writes with an idempotency key run at most once (issue 9 item 2), in the pipeline:
the attempt is audited before the write leaves, and a write whose answer was lost is
never sent again blindly. The worker-kill cases are in tests/faults/."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import select

from hub.calls.pipeline import CallRequest, execute_call
from hub.ops import dlq
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import CallResult, DeadLetter, IntegrationLog
from tests.calls.fake_provider import Reply


def _rows(sessions, tenant: str) -> list[IntegrationLog]:
    with sessions() as s:
        return list(s.scalars(select(IntegrationLog).where(IntegrationLog.tenant_id == tenant)
                              .order_by(IntegrationLog.started_at)))


def _task(name: str, tenant: str) -> str:
    """A task id of this test alone (attempts are counted by task id)."""
    return f"{tenant}-{name}"


def _charge(key: str | None = "order-42", **options) -> CallRequest:  # type: ignore[no-untyped-def]
    return CallRequest(options.pop("tenant"), "payments", "post",
                       {"path": "/v1/charges", "json": {"amount": 5}}, key, **options)


def test_a_write_is_in_the_audit_trail_before_its_answer(services, sessions, tenant, provider,
                                                         make_integration):
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=1.0))
    outcomes: list = []
    call = threading.Thread(target=lambda: outcomes.append(execute_call(
        services, _charge(tenant=tenant), task_id=_task("task-1", tenant))))
    call.start()
    deadline = time.monotonic() + 10
    while provider.hits("/v1/charges") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # The provider holds the POST: the hub's trail already has it, committed.
    [sending] = _rows(sessions, tenant)
    assert (sending.outcome, sending.method, sending.task_id) == \
        ("sending", "POST", _task("task-1", tenant))
    assert sending.url.endswith("/v1/charges") and sending.idempotency_key == "order-42"
    call.join(timeout=10)

    [done] = _rows(sessions, tenant)
    assert (done.id, done.outcome, done.status_code) == (sending.id, "success", 200)
    assert outcomes[0].result["log_id"] == str(sending.id)


def test_a_read_is_audited_once_it_is_answered(services, sessions, tenant, provider,
                                               make_integration):
    make_integration("payments")
    outcome = execute_call(services, CallRequest(tenant, "payments", "get",
                                                 {"path": "/v1/charges"}), task_id=_task("t-get", tenant))
    assert outcome.status == "success"
    assert [r.outcome for r in _rows(sessions, tenant)] == ["success"]


def test_a_keyed_write_whose_answer_is_lost_is_outcome_unknown_not_retried(
        services, sessions, tenant, provider, make_integration):
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=2.0))

    lost = execute_call(services, _charge(tenant=tenant, timeout=0.3), task_id=_task("task-1", tenant))

    assert lost.status == "failed" and lost.error.code == "OUTCOME_UNKNOWN"
    assert "POST " in lost.error.message and "/v1/charges" in lost.error.message
    assert provider.hits("/v1/charges") == 1
    [row] = _rows(sessions, tenant)
    assert row.outcome == "outcome_unknown" and "timed out" in row.error
    with sessions() as s:
        [letter] = s.scalars(select(DeadLetter).where(DeadLetter.tenant_id == tenant)).all()
        shown = dlq.describe_full(s, letter)
        claim = s.scalars(select(CallResult).where(CallResult.tenant_id == tenant)).one()
    assert (letter.error_code, letter.task_id, letter.task_name) == \
        ("OUTCOME_UNKNOWN", _task("task-1", tenant), "hub.call")
    assert letter.kwargs["idempotency_key"] == "order-42"
    assert (shown["sent"]["method"], shown["sent"]["log_id"]) == ("POST", str(row.id))
    assert claim.status == "unknown"
    # The caller (or anyone) asking again with the key is refused, nothing is sent.
    again = execute_call(services, _charge(tenant=tenant), task_id=_task("task-2", tenant))
    assert again.status == "failed" and again.error.code == "OUTCOME_UNKNOWN"
    assert provider.hits("/v1/charges") == 1
    # A write without a key keeps the retry policy (at least once).
    provider.script("/v1/charges", Reply(200, {}, delay=2.0))
    unkeyed = execute_call(services, _charge(None, tenant=tenant, timeout=0.3),
                           task_id=_task("task-3", tenant))
    assert unkeyed.status == "retry" and unkeyed.error.code == "TIMEOUT"


def test_replaying_an_outcome_unknown_letter_frees_its_key(services, sessions, tenant, provider,
                                                          make_integration):
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=2.0))
    assert execute_call(services, _charge(tenant=tenant, timeout=0.3),
                        task_id=_task("task-1", tenant)).error.code == "OUTCOME_UNKNOWN"

    # The operator checked with the provider: it never got it. Replay it.
    dispatcher = RecordingDispatcher()
    [sent] = dlq.replay(sessions, dispatcher, dlq.Filters(tenant=tenant), queue="replay")
    [(name, kwargs, _queue)] = dispatcher.sent
    replayed = execute_call(services, CallRequest(**{k: v for k, v in kwargs.items()
                                                     if k != "timeout"}),
                            task_id=sent["replay_task_id"])

    assert name == "hub.call" and replayed.status == "success"
    assert provider.hits("/v1/charges") == 2


def test_a_provider_that_dedups_gets_a_lost_write_again(services, sessions, tenant, provider,
                                                        make_integration):
    make_integration("payments", config={"provider_dedup": ["post"]})
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=2.0))

    lost = execute_call(services, _charge(tenant=tenant, timeout=0.3), task_id=_task("task-1", tenant))

    assert lost.status == "retry" and lost.error.code == "TIMEOUT"
    retried = execute_call(services, _charge(tenant=tenant), task_id=_task("task-1", tenant))
    assert retried.status == "success" and retried.result["attempts"] == 2
    assert [r.outcome for r in _rows(sessions, tenant)] == ["failed", "success"]
    assert provider.server is not None
    assert [seen.headers.get("Idempotency-Key") for seen in provider.server.seen
            if seen.path == "/v1/charges"] == ["order-42", "order-42"]


def test_a_connection_refused_is_retried_even_for_a_keyed_write(services, sessions, tenant,
                                                                make_integration):
    from hub.dev.embedded import free_port

    make_integration("payments", base_url=f"http://127.0.0.1:{free_port()}")
    refused = execute_call(services, _charge(f"k-{uuid.uuid4().hex[:6]}", tenant=tenant),
                           task_id=_task("task-1", tenant))
    assert refused.status == "retry"  # it never left: sending it again is safe
    assert [r.outcome for r in _rows(sessions, tenant)] == ["failed"]


def test_a_stale_claim_whose_write_was_sent_is_not_taken_over(services, sessions, tenant,
                                                              provider, make_integration):
    # Another task claimed the key, committed its `sending` row and was never heard of
    # again (its worker died; its message is gone): after the stale time, a new call
    # with the key must not send the write a second time.
    from datetime import timedelta
    from decimal import Decimal

    from sqlalchemy import update

    from hub.calls import audit, idempotency
    from hub.platform.scheduler import utcnow

    row = make_integration("payments")
    key = idempotency.Key(tenant, row.id, "order-42")
    gone = _task("gone", tenant)
    assert idempotency.claim(sessions, key, operation="post", task_id=gone,
                             stale_after=3600).state == "owned"
    with sessions() as s, s.begin():
        sending = audit.write(s, audit.Attempt(
            tenant_id=tenant, integration_id=row.id, operation="post", outcome="sending",
            started_at=utcnow(), method="POST", url=provider.url + "/v1/charges",
            task_id=gone, idempotency_key="order-42"), cost_per_call=Decimal(0))
        assert idempotency.mark_sent(s, key, gone, sending.id)
        s.execute(update(CallResult).where(*key.where())
                  .values(created_at=utcnow() - timedelta(days=1)))

    outcome = execute_call(services, _charge(tenant=tenant), task_id=_task("new", tenant))

    assert outcome.status == "failed" and outcome.error.code == "OUTCOME_UNKNOWN"
    assert outcome.error.details["task_id"] == gone
    assert provider.hits("/v1/charges") == 0
    assert [r.outcome for r in _rows(sessions, tenant)] == ["outcome_unknown"]
    with sessions() as s:
        [letter] = s.scalars(select(DeadLetter).where(DeadLetter.tenant_id == tenant)).all()
    assert (letter.task_id, letter.error_code) == (gone, "OUTCOME_UNKNOWN")


# --- the operator closes the letter: hub dlq resolve -------------------------------------


def _lost_write(services, sessions, tenant, provider, make_integration) -> str:  # type: ignore[no-untyped-def]
    """A keyed write whose answer was lost, as an operator finds it: its letter's id."""
    make_integration("payments")
    provider.script("/v1/charges", Reply(200, {"id": "ch_1"}, delay=2.0))
    assert execute_call(services, _charge(tenant=tenant, timeout=0.3),
                        task_id=_task("task-1", tenant)).error.code == "OUTCOME_UNKNOWN"
    with sessions() as s:
        return str(s.scalars(select(DeadLetter.id).where(DeadLetter.tenant_id == tenant)).one())


def test_resolving_a_lost_write_as_succeeded_answers_its_key_and_closes_the_letter(
        services, sessions, tenant, provider, make_integration):
    from tests.cli.conftest import Hub

    hub = Hub()
    letter = _lost_write(services, sessions, tenant, provider, make_integration)
    [sent_row] = _rows(sessions, tenant)
    code, shown = hub.json("dlq", "show", "--id", letter)
    # What was sent and when, for the operator to ask the provider about.
    assert (code, shown["sent"]["method"], shown["sent"]["log_id"]) == (0, "POST", str(sent_row.id))
    assert shown["sent"]["url"].endswith("/v1/charges") and shown["sent"]["at"]
    assert shown["resolution"] is None

    code, resolved = hub.json("dlq", "resolve", "--id", letter, "--outcome", "succeeded",
                              "--note", "provider shows ch_1", "--by", "alice")

    assert code == 0
    assert {k: resolved["resolution"][k] for k in ("outcome", "by", "note")} == \
        {"outcome": "succeeded", "by": "alice", "note": "provider shows ch_1"}
    assert resolved["resolution"]["at"]
    assert hub.json("dlq", "show", "--id", letter)[1]["resolution"]["by"] == "alice"
    # The key answers with the reconciliation; nothing is sent again.
    again = execute_call(services, _charge(tenant=tenant), task_id=_task("task-2", tenant))
    assert again.status == "success" and again.result["data"] is None
    assert again.result["reconciled"]["outcome"] == "succeeded"
    assert again.result["log_id"] == str(sent_row.id)
    assert provider.hits("/v1/charges") == 1
    # Closed: a replay (even --again) skips it, a second resolve is refused.
    assert dlq.replay(sessions, RecordingDispatcher(),
                      dlq.Filters(tenant=tenant, include_replayed=True), queue="replay") == []
    code, refused = hub.json("dlq", "resolve", "--id", letter, "--outcome", "failed")
    assert (code, refused["error"]["code"]) == (1, "CONFLICT")
    assert "alice" in refused["error"]["message"]


def test_resolving_a_lost_write_as_failed_frees_its_key_without_sending(
        services, sessions, tenant, provider, make_integration):
    from tests.cli.conftest import Hub

    hub = Hub()
    letter = _lost_write(services, sessions, tenant, provider, make_integration)

    result = hub("dlq", "resolve", "--id", letter, "--outcome", "failed")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"dead letter {letter} resolved: failed (by ")
    assert provider.hits("/v1/charges") == 1  # resolving sends nothing
    provider.script("/v1/charges", Reply(200, {"id": "ch_2"}))
    again = execute_call(services, _charge(tenant=tenant), task_id=_task("task-2", tenant))
    assert again.status == "success" and again.result["data"] == {"id": "ch_2"}
    assert provider.hits("/v1/charges") == 2
    code, listed = hub.json("dlq", "list", "--tenant", tenant)
    assert code == 0
    assert [row["resolution"]["outcome"] for row in listed] == ["failed"]


def test_only_outcome_unknown_letters_are_resolved(sessions, tenant):
    from hub.platform import deadletters
    from tests.cli.conftest import Hub

    with sessions() as s, s.begin():
        known = deadletters.record(s, origin="call", task_name="hub.call",
                                   kwargs={"tenant": tenant}, tenant_id=tenant,
                                   error_code="UPSTREAM_ERROR", error="503", attempts=5).id

    code, refused = Hub().json("dlq", "resolve", "--id", str(known), "--outcome", "succeeded")

    assert (code, refused["error"]["code"]) == (1, "CONFLICT")
    assert "UPSTREAM_ERROR" in refused["error"]["message"]
    assert refused["error"]["details"] == {"error_code": "UPSTREAM_ERROR"}
    with sessions() as s:
        assert s.get(DeadLetter, known).resolved_at is None
    code, usage = Hub().json("dlq", "resolve", "--id", str(known), "--outcome", "maybe")
    assert (code, usage["error"]["code"]) == (2, "USAGE_ERROR")
