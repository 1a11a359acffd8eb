"""hub.webhooks.processing: claim once, handlers, events, fan-out, retries, sweeper, replay."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from hub.calls import cache, integrations
from hub.deliveries import sending, subscriptions
from hub.ops import guardrails
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.models import DeadLetter, Delivery, WebhookEvent
from hub.platform.scheduler import utcnow
from hub.platform.services import Services
from hub.webhooks import processing
from hub.webhooks.handlers import HandlerRegistry
from tests.hub.inbox import add_event, subscriber, wait_for


@pytest.fixture
def recording_services(settings):
    """Services whose sends are only recorded, with a short retry budget."""
    svc = Services(load_settings(webhook_max_attempts=2, webhook_retry_base=1.0),
                   RecordingDispatcher())
    yield svc
    svc.close()


@pytest.fixture
def worker_services(worker):
    from tasks.app import services

    return services()


def _subscribe(sessions, services, tenant, url, events=()):
    with sessions() as session, session.begin():
        new = subscriptions.add(session, services.vault, services.settings, tenant=tenant,
                                url=url, event_types=events)
    return new.subscription.id, new.secret.reveal()


def _event(sessions, event_id):
    with sessions() as session:
        return session.get(WebhookEvent, event_id)


def _deliveries(sessions, event_id):
    with sessions() as session:
        return list(session.scalars(select(Delivery).where(Delivery.event_id == event_id)))


class _PubSub:
    def __init__(self, redis_client, *channels):
        self.pubsub = redis_client.pubsub()
        self.pubsub.subscribe(*channels)
        wait_for(lambda: self.pubsub.get_message(timeout=0.1))  # the subscribe confirmation

    def collect(self, tenant, count, timeout=10.0):
        found = []

        def more():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                event = json.loads(message["data"])
                if event["tenant"] == tenant:
                    found.append((message["channel"], event))
            return len(found) >= count

        wait_for(more, timeout=timeout, interval=0)
        return found

    def close(self):
        self.pubsub.close()


def test_a_second_worker_skips_an_event_being_processed(recording_services, sessions, tenant):
    event_id = add_event(sessions, tenant)
    entered, release = threading.Event(), threading.Event()
    handlers = HandlerRegistry()

    @handlers.register("stripe", "invoice.*")
    def slow(event, ctx):
        entered.set()
        release.wait(10)

    outcomes = []
    first = threading.Thread(target=lambda: outcomes.append(
        processing.process_event(recording_services, event_id, handlers=handlers)))
    first.start()
    assert entered.wait(10)
    second = processing.process_event(recording_services, event_id, handlers=handlers)
    release.set()
    first.join(10)

    assert second.status == "skipped"
    assert [o.status for o in outcomes] == ["processed"]
    assert processing.process_event(recording_services, event_id).status == "skipped"
    row = _event(sessions, event_id)
    assert (row.status, row.attempts) == ("processed", 1)


def test_redelivered_message_is_processed_once_by_the_worker(
        celery_app, worker_services, sessions, tenant, redis_client):
    with subscriber() as receiver:
        _, secret = _subscribe(sessions, worker_services, tenant, receiver.url)
        receiver.secrets.append(secret)
        event_id = add_event(sessions, tenant)
        results = [celery_app.send_task("hub.webhooks.process",
                                        kwargs={"event_id": str(event_id)}, ignore_result=False)
                   for _ in range(2)]
        statuses = sorted(r.get(timeout=30)["status"] for r in results)

        assert statuses == ["processed", "skipped"]
        wait_for(lambda: receiver.count() >= 1)
        wait_for(lambda: _deliveries(sessions, event_id)[0].status == "succeeded")
    assert len(_deliveries(sessions, event_id)) == 1
    assert receiver.count() == 1


def test_a_message_whose_event_a_batch_processed_is_dropped_without_counting_its_receive(
        celery_app, worker_services, sessions, tenant, redis_client):
    event_id = add_event(sessions, tenant)
    assert processing.process_event(worker_services, event_id).status == "processed"
    # Its own message comes now. Counting its receive (and clearing the count) would be
    # two Redis round trips for a message with nothing to do: a count already past the
    # poison limit shows it is not counted (counted, it would be dead-lettered).
    task_id = f"late-{uuid.uuid4().hex}"
    counter = guardrails.receive_key(worker_services, task_id)
    poisoned = worker_services.settings.max_receives + 1
    redis_client.set(counter, poisoned)

    result = celery_app.send_task("hub.webhooks.process", kwargs={"event_id": str(event_id)},
                                  task_id=task_id, ignore_result=False)

    assert result.get(timeout=30)["status"] == "skipped"
    assert int(redis_client.get(counter)) == poisoned
    with sessions() as session:
        assert session.scalars(select(DeadLetter).where(DeadLetter.task_id == task_id)) \
            .first() is None


def test_fan_out_signed_delivery_and_events(worker_services, sessions, tenant, redis_client):
    bus = _PubSub(redis_client, "integration.webhook.received",
                  "integration.webhook.stripe.invoice.paid")
    try:
        with subscriber() as receiver, subscriber() as other:
            _, secret = _subscribe(sessions, worker_services, tenant, receiver.url,
                                   events=["stripe.invoice.*"])
            receiver.secrets.append(secret)
            _subscribe(sessions, worker_services, tenant, other.url, events=["github.*"])
            event_id = add_event(sessions, tenant, payload={"id": "evt_9", "amount": 9})
            worker_services.dispatcher.send("hub.webhooks.process", {"event_id": str(event_id)})

            wait_for(lambda: receiver.count() == 1)
            published = bus.collect(tenant, 2)
            (delivery,) = wait_for(lambda: [d for d in _deliveries(sessions, event_id)
                                            if d.status == "succeeded"])
            got = receiver.received[0]
            assert other.count() == 0
    finally:
        bus.close()

    assert got.verified
    assert got.headers["Webhook-Id"] == delivery.message_id
    body = json.loads(got.body)
    assert body["type"] == "stripe.invoice.paid"
    assert body["data"] == {"id": "evt_9", "amount": 9}
    assert {channel for channel, _ in published} == {
        "integration.webhook.received", "integration.webhook.stripe.invoice.paid"}
    data = published[0][1]["data"]
    assert data["event_id"] == str(event_id) and data["payload"]["id"] == "evt_9"
    assert "must-never-leak" not in json.dumps(published) + got.body.decode()


def test_handler_failure_retries_with_backoff_then_dead_letters(
        recording_services, sessions, tenant):
    event_id = add_event(sessions, tenant)
    handlers = HandlerRegistry()

    @handlers.register("*")
    def broken(event, ctx):
        raise RuntimeError("ledger unavailable")

    before = utcnow()
    first = processing.process_event(recording_services, event_id, handlers=handlers)
    row = _event(sessions, event_id)
    assert first.status == "failed" and row.status == "failed" and row.attempts == 1
    # HUB_WEBHOOK_RETRY_BASE=1 s, +-20 % jitter
    assert before + timedelta(seconds=0.8) <= row.next_attempt_at <= utcnow() + timedelta(seconds=1.2)
    assert "ledger unavailable" in row.last_error

    bus = _PubSub(recording_services.redis, "integration.dead_letter.added")
    try:
        second = processing.process_event(recording_services, event_id, handlers=handlers)
        ((_channel, announced),) = bus.collect(tenant, 1)
    finally:
        bus.close()
    row = _event(sessions, event_id)
    assert (second.status, row.status, row.attempts) == ("dead", "dead", 2)
    with sessions() as session:
        letter = session.scalars(select(DeadLetter).where(
            DeadLetter.tenant_id == tenant, DeadLetter.origin == "webhook")).one()
    assert announced["data"]["id"] == str(letter.id)
    assert announced["data"]["ids"] == {"event_id": str(event_id)}
    assert letter.task_name == "hub.webhooks.process"
    assert letter.kwargs == {"event_id": str(event_id)}

    # `hub dlq replay` sends the letter's task and kwargs: the handler is fixed by now.
    handlers.unregister(broken)
    replayed = processing.process_event(recording_services, **letter.kwargs, handlers=handlers)
    assert replayed.status == "processed" and _event(sessions, event_id).status == "processed"


def test_sweeper_enqueues_a_lost_pending_event_and_due_failures(
        recording_services, sessions, tenant):
    lost = add_event(sessions, tenant, age=120)
    fresh = add_event(sessions, tenant, age=0)
    failed = add_event(sessions, tenant, age=5)
    with sessions() as session, session.begin():
        session.execute(update(WebhookEvent).where(WebhookEvent.id == failed).values(
            status="failed", attempts=1, next_attempt_at=utcnow() - timedelta(seconds=1)))

    processing.sweep(recording_services)
    sent = {kw["event_id"] for name, kw, _ in recording_services.dispatcher.sent
            if name == "hub.webhooks.process"}
    assert {str(lost), str(failed)} <= sent and str(fresh) not in sent

    recording_services.dispatcher.sent.clear()
    processing.sweep(recording_services)  # marked: not flooded again on the next tick
    sent = {kw["event_id"] for _, kw, _ in recording_services.dispatcher.sent}
    assert str(lost) not in sent and str(failed) not in sent


def test_sweeper_leaves_pending_events_to_a_backlogged_queue_but_sends_due_failures(
        recording_services, sessions, tenant):
    stale = add_event(sessions, tenant, age=120)
    failed = add_event(sessions, tenant, age=5)
    with sessions() as session, session.begin():
        session.execute(update(WebhookEvent).where(WebhookEvent.id == failed).values(
            status="failed", attempts=1, next_attempt_at=utcnow() - timedelta(seconds=1)))

    processing.sweep(recording_services, limit=500, queued=500)
    sent = {kw["event_id"] for _, kw, _ in recording_services.dispatcher.sent}
    assert str(failed) in sent and str(stale) not in sent

    recording_services.dispatcher.sent.clear()
    processing.sweep(recording_services, limit=500, queued=499)  # the backlog has drained
    sent = {kw["event_id"] for _, kw, _ in recording_services.dispatcher.sent}
    assert str(stale) in sent


def test_queue_waiting_counts_every_priority_list_of_the_broker(settings):
    import dataclasses
    import uuid

    from hub.ops import queues

    own = dataclasses.replace(settings, queue_prefix=f"hub-test-count-{uuid.uuid4().hex[:8]}.")
    queue = own.queue("webhooks")
    high = queue + queues.KOMBU_PRIORITY_SEPARATOR + "9"
    broker = queues.broker_client(own)
    try:
        assert queues.waiting(own, "webhooks") == 0  # no such list yet
        broker.lpush(queue, "a", "b", "c")
        broker.lpush(high, "urgent")
        assert queues.waiting(own, "webhooks") == 4
    finally:
        broker.delete(queue, high)
        broker.close()
    assert queues.waiting(dataclasses.replace(own, broker_url="amqp://guest@localhost//"),
                          "webhooks") is None  # only a Redis broker can be counted
    assert queues.waiting(dataclasses.replace(own, broker_url="redis://127.0.0.1:1/0"),
                          "webhooks") is None  # down: unknown, not zero


def test_sweeper_with_a_real_worker_processes_the_lost_event(worker_services, sessions, tenant):
    lost = add_event(sessions, tenant, age=120)

    processing.sweep(worker_services)

    wait_for(lambda: _event(sessions, lost).status == "processed")


def test_replay_runs_a_processed_event_again_and_keeps_webhook_ids(
        recording_services, sessions, tenant):
    with subscriber() as receiver:
        _subscribe(sessions, recording_services, tenant, receiver.url)
        event_id = add_event(sessions, tenant)
        processing.process_event(recording_services, event_id)
        (before,) = _deliveries(sessions, event_id)
        with pytest.raises(Exception, match="no webhook event"):
            processing.replay_event(recording_services, event_id, tenant="someone-else")
        sending.send_delivery(recording_services, str(before.id))

        result = processing.replay_event(recording_services, event_id, tenant=tenant,
                                         redeliver=True)
        again = processing.process_event(recording_services, event_id)
        # Replayed again before that re-send went out: it joins it (one POST, not two).
        joined = processing.replay_event(recording_services, event_id, tenant=tenant,
                                         redeliver=True)

    (after,) = _deliveries(sessions, event_id)
    assert result["redelivered"] == 1 and again.status == "processed"
    assert (joined["redelivered"], joined["already_pending"]) == (0, 1)
    assert after.message_id == before.message_id and after.status == "pending"
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.event_id == event_id))
    assert count == 1


def test_transaction_updated_invalidates_the_cached_status(recording_services, sessions, tenant):
    """Seed 003: a transaction_updated webhook drops the cached get_transaction_status."""
    with sessions() as session, session.begin():
        payments = integrations.create(session, integrations.IntegrationSpec(
            tenant_id=tenant, name="payments", adapter="rest", base_url="https://pay.example"))
    params = {"transaction_id": "tx_42"}
    for transaction_params in (params, {"transaction_id": "tx_7"}):
        cache.store(recording_services, payments, "get_transaction_status", transaction_params,
                    status_code=200, data={"status": "pending"}, ttl=600)
    event_id = add_event(sessions, tenant, source="payments", event_type="transaction_updated",
                         payload={"transaction_id": "tx_42", "status": "settled"})

    assert processing.process_event(recording_services, event_id).status == "processed"

    assert cache.lookup(recording_services, payments, "get_transaction_status", params) is None
    assert cache.lookup(recording_services, payments, "get_transaction_status",
                        {"transaction_id": "tx_7"}) is not None


def test_invalidation_of_an_unknown_integration_fails_open(recording_services, sessions, tenant):
    event_id = add_event(sessions, tenant, source="nowhere", event_type="transaction_updated",
                         payload={"transaction_id": "tx_1"})

    assert processing.process_event(recording_services, event_id).status == "processed"


def test_beat_runs_the_sweeper_and_the_due_delivery_sender(celery_app):
    import celeryconfig

    celery_app.loader.import_default_modules()
    tasks = {entry["task"] for entry in celeryconfig.beat_schedule.values()}

    assert {"hub.maintenance.sweep_webhook_events", "hub.maintenance.send_due_deliveries"} <= tasks
    assert tasks <= set(celery_app.tasks)
    assert celeryconfig.route_task("hub.maintenance.send_due_deliveries", (), {}, {}) == {
        "queue": celeryconfig.settings.queue("maintenance"),
        "routing_key": celeryconfig.settings.queue("maintenance")}


def test_duplicate_messages_racing_on_worker_threads_process_each_event_once(
        celery_app, worker_services, sessions, tenant):
    with subscriber() as receiver:
        _, secret = _subscribe(sessions, worker_services, tenant, receiver.url)
        receiver.secrets.append(secret)
        event_ids = [add_event(sessions, tenant) for _ in range(6)]
        results = [celery_app.send_task("hub.webhooks.process", kwargs={"event_id": str(e)},
                                        ignore_result=False)
                   for e in event_ids for _ in range(3)]  # two redeliveries of each
        statuses = [r.get(timeout=60)["status"] for r in results]
        wait_for(lambda: receiver.count() >= 6)
        wait_for(lambda: all(d.status == "succeeded" for e in event_ids
                             for d in _deliveries(sessions, e)))

    # A message may process other pending events of its tenant with its own (a batch);
    # theirs then skip. Every event was processed by exactly one of the 18 calls.
    outcomes = [r.get(timeout=60) for r in results]
    assert sum(o["batch"] for o in outcomes) == 6
    assert set(statuses) == {"processed", "skipped"}
    ids = [r.headers["Webhook-Id"] for r in receiver.received]
    assert len(ids) == 6 == len(set(ids)) and all(r.verified for r in receiver.received)
    assert all(_event(sessions, e).attempts == 1 for e in event_ids)


def test_one_message_processes_its_tenants_backlog_in_one_batch(recording_services, sessions,
                                                                tenant):
    _subscribe(sessions, recording_services, tenant, "http://127.0.0.1:9/hooks")
    ids = [add_event(sessions, tenant, age=5 - n) for n in range(5)]
    elsewhere = add_event(sessions, tenant + "-other")

    outcome = processing.process_event(recording_services, ids[2])

    assert (outcome.status, outcome.batch, outcome.deliveries) == ("processed", 5, 1)
    assert [_event(sessions, e).status for e in ids] == ["processed"] * 5
    assert _event(sessions, elsewhere).status == "pending"  # another tenant's backlog
    batches = [kw["delivery_ids"] for name, kw, _ in recording_services.dispatcher.sent
               if name == "hub.deliveries.send_batch"]
    assert len(batches) == 1 and len(batches[0]) == 5  # one message for the batch
    # The messages of the others find their event done, without a transaction.
    assert processing.process_event(recording_services, ids[4]).status == "skipped"
    assert all(_event(sessions, e).attempts == 1 for e in ids)


def test_process_batch_leaves_the_done_mark_to_its_caller(recording_services, sessions,
                                                          tenant, redis_client):
    # A worker's message looked for the mark before counting its receive; its body does
    # not read it again: the claim in PostgreSQL decides (a mark left over, here, too).
    event_id = add_event(sessions, tenant)
    redis_client.set(recording_services.settings.redis_key("webhook-done", str(event_id)), 1)

    assert processing.process_event(recording_services, event_id).status == "skipped"
    assert processing.process_batch(recording_services, event_id).status == "processed"
    assert processing.process_batch(recording_services, event_id).status == "skipped"


def test_a_failing_handler_fails_its_event_alone_in_a_batch(recording_services, sessions,
                                                            tenant):
    ids = [add_event(sessions, tenant, age=3 - n) for n in range(3)]
    handlers = HandlerRegistry()

    @handlers.register("stripe", "invoice.*")
    def picky(event, ctx):
        if event.id == ids[1]:
            raise RuntimeError("cannot handle this one")

    outcome = processing.process_event(recording_services, ids[0], handlers=handlers)

    assert (outcome.status, outcome.batch) == ("processed", 2)
    # Left for its own message, which fails it and schedules its retry.
    assert [_event(sessions, e).status for e in ids] == ["processed", "pending", "processed"]
    assert processing.process_event(recording_services, ids[1], handlers=handlers).status \
        == "failed"
    row = _event(sessions, ids[1])
    assert row.attempts == 1 and "cannot handle this one" in row.last_error
    assert row.next_attempt_at is not None
