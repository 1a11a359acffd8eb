"""Retries and replays that meet an open circuit wait for it (issue 9 item 1), through a
real worker: never a silent CIRCUIT_OPEN failure, and a replay linked to its outcome."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.calls.breaker import breaker_for
from hub.ops import dlq
from hub.platform.models import DeadLetter, IntegrationLog
from tests.calls.fake_provider import Reply
from tests.calls.polling import wait_for

TIMEOUT = 60
#: Long enough that the retry (or replay) surely meets the circuit still open on a
#: loaded machine: pybreaker keeps the opening time in whole seconds, and the retry's
#: countdown or the replay's dispatch may take a second or two under `pytest -n 2`.
RECOVERY = 5


def _config(threshold: int, attempts: int) -> dict:
    return {"retry": {"base": 0.01, "cap": 0.02, "max_attempts": attempts},
            "breaker": {"failure_threshold": threshold, "recovery_timeout": RECOVERY}}


def _call(client_app, tenant, name, path):  # type: ignore[no-untyped-def]
    return client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": name, "operation": "post",
        "params": {"path": path, "json": {"order": 1}}})


def _outcomes(sessions, task_id: str) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(IntegrationLog.outcome)
                              .where(IntegrationLog.task_id == task_id)
                              .order_by(IntegrationLog.started_at)))


def _letters(sessions, tenant: str) -> list[DeadLetter]:
    with sessions() as s:
        return list(s.scalars(select(DeadLetter).where(DeadLetter.tenant_id == tenant)
                              .order_by(DeadLetter.created_at)))


def _dead_lettered(result) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)
    assert caught.value.args[0]["error"]["code"] == "DEAD_LETTERED"


def _replay(celery_app, sessions, settings, tenant: str) -> str:
    from celerydispatch import CeleryDispatcher

    [sent] = dlq.replay(sessions, CeleryDispatcher(celery_app),
                        dlq.Filters(tenant=tenant, include_replayed=False),
                        queue=settings.queue("replay"))
    return str(sent["replay_task_id"])


def test_a_retry_meeting_an_open_circuit_waits_for_it(worker, client_app, sessions, tenant,
                                                      provider, make_integration):
    make_integration("flaky", config=_config(threshold=1, attempts=4))
    provider.script("/v1/orders", Reply(503))  # opens the circuit; then the provider is fine

    result = _call(client_app, tenant, "flaky", "/v1/orders")
    envelope = result.get(timeout=TIMEOUT)

    assert envelope["ok"] and envelope["attempts"] == 3
    assert _outcomes(sessions, result.id) == ["failed", "circuit_open", "success"]
    assert provider.hits("/v1/orders") == 2  # the provider was spared while open


def test_a_retry_whose_attempts_run_out_on_an_open_circuit_is_dead_lettered(
        worker, client_app, sessions, tenant, provider, make_integration):
    make_integration("flaky", config=_config(threshold=1, attempts=2))
    provider.script("/v1/orders", Reply(503))

    result = _call(client_app, tenant, "flaky", "/v1/orders")
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)

    error = caught.value.args[0]["error"]
    assert error["code"] == "DEAD_LETTERED"
    assert error["details"]["last_error"]["code"] == "CIRCUIT_OPEN"
    letter = wait_for(lambda: _letters(sessions, tenant), "the dead letter")[0]
    assert (letter.task_id, letter.error_code, letter.attempts) == \
        (result.id, "CIRCUIT_OPEN", 2)
    assert _outcomes(sessions, result.id) == ["failed", "dead_lettered"]


def test_a_first_call_meeting_an_open_circuit_fails_fast(worker, client_app, services,
                                                          sessions, tenant, provider,
                                                          make_integration):
    row = make_integration("flaky", config=_config(threshold=1, attempts=3))
    breaker_for(services, row).circuit.open()

    result = _call(client_app, tenant, "flaky", "/v1/orders")
    with pytest.raises(Exception) as caught:
        result.get(timeout=TIMEOUT)

    assert caught.value.args[0]["error"]["code"] == "CIRCUIT_OPEN"
    assert _outcomes(sessions, result.id) == ["circuit_open"]
    assert provider.hits() == 0 and _letters(sessions, tenant) == []


def test_a_replay_meeting_an_open_circuit_waits_and_is_linked_to_its_success(
        worker, celery_app, client_app, services, sessions, settings, tenant, provider,
        make_integration):
    # The default case: the failures that dead-letter a call also open its circuit.
    row = make_integration("flaky", config=_config(threshold=2, attempts=2))
    provider.script("/v1/orders", Reply(500), Reply(500))
    _dead_lettered(_call(client_app, tenant, "flaky", "/v1/orders"))
    [letter] = wait_for(lambda: _letters(sessions, tenant), "the dead letter")
    assert breaker_for(services, row).state == "open"

    replay_id = _replay(celery_app, sessions, settings, tenant)
    envelope = client_app.AsyncResult(replay_id).get(timeout=TIMEOUT)

    assert envelope["ok"] and envelope["attempts"] == 2
    assert _outcomes(sessions, replay_id) == ["circuit_open", "success"]
    assert provider.hits("/v1/orders") == 3
    with sessions() as s:
        shown = dlq.describe_full(s, dlq.get(s, letter.id))
    assert shown["replay"]["task_id"] == replay_id
    assert (shown["replay"]["outcome"], shown["replay"]["dead_letter_id"]) == ("success", None)
    assert [x.id for x in _letters(sessions, tenant)] == [letter.id]


def test_a_replay_that_fails_again_is_a_new_dead_letter_linked_to_the_first(
        worker, celery_app, client_app, services, sessions, settings, tenant, provider,
        make_integration):
    make_integration("flaky", config=_config(threshold=2, attempts=2))
    provider.script("/v1/orders", *[Reply(500)] * 3)
    _dead_lettered(_call(client_app, tenant, "flaky", "/v1/orders"))
    [first] = wait_for(lambda: _letters(sessions, tenant), "the dead letter")

    replay_id = _replay(celery_app, sessions, settings, tenant)
    with pytest.raises(Exception) as caught:
        client_app.AsyncResult(replay_id).get(timeout=TIMEOUT)

    assert caught.value.args[0]["error"]["code"] == "DEAD_LETTERED"
    letters = wait_for(lambda: [x for x in _letters(sessions, tenant) if x.id != first.id],
                        "the replay's dead letter")
    [again] = letters
    assert (again.task_id, again.replay_of, again.error_code) == \
        (replay_id, first.id, "UPSTREAM_ERROR")
    assert _outcomes(sessions, replay_id) == ["circuit_open", "dead_lettered"]
    with sessions() as s:
        shown = dlq.describe_full(s, dlq.get(s, first.id))
        linked = dlq.describe_full(s, dlq.get(s, again.id))
    assert shown["replay"] == {"task_id": replay_id, "at": shown["replayed_at"],
                               "outcome": "dead_lettered", "dead_letter_id": str(again.id)}
    assert linked["replay_of"] == str(first.id) and linked["replay"] is None
