"""hub.deliveries.sending: status semantics, retry schedule from PostgreSQL, disabling, replay."""

from __future__ import annotations

import itertools
import json
import random
import threading
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, update
from werkzeug.wrappers import Response

from hub.deliveries import sending, subscriptions
from hub.deliveries.sending import DeliveryFilter
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.errors import SSRFRefused, ValidationError
from hub.platform.models import DeadLetter, Delivery, DeliveryAttempt, Subscription
from hub.platform.scheduler import utcnow
from hub.platform.services import Services
from hub.webhooks import processing
from tests.hub.fake_http import serve
from tests.hub.inbox import add_event, subscriber, wait_for


@pytest.fixture
def svc(settings):
    """Services with recorded sends and no jitter, so waits can be asserted exactly."""
    services = Services(load_settings(delivery_jitter=0.0), RecordingDispatcher())
    yield services
    services.close()


def _subscribe(svc, tenant, url, schedule=None, events=()):
    with svc.sessions() as session, session.begin():
        new = subscriptions.add(session, svc.vault, svc.settings, tenant=tenant, url=url,
                                event_types=events, retry_schedule=schedule)
    return new.subscription.id, new.secret.reveal()


def _deliver_event(svc, tenant, **event):
    """Record and process an event; return its delivery ids."""
    event_id = add_event(svc.sessions, tenant, **event)
    assert processing.process_event(svc, event_id).status == "processed"
    with svc.sessions() as session:
        return [d.id for d in session.scalars(select(Delivery).where(Delivery.event_id == event_id))]


def _get(svc, model, key):
    with svc.sessions() as session:
        return session.get(model, key)


def _drive_due(svc, delivery_id):
    """What beat and the worker do once the wait is over: send_due, then the task body."""
    wait_for(lambda: _get(svc, Delivery, delivery_id).next_attempt_at <= utcnow())
    svc.dispatcher.sent.clear()
    sending.send_due(svc)
    assert any(name == "hub.deliveries.send_batch" and str(delivery_id) in kw["delivery_ids"]
               for name, kw, _ in svc.dispatcher.sent)
    return sending.send_delivery(svc, str(delivery_id))


def test_success_is_signed_and_recorded(svc, tenant):
    with subscriber(default=(200, {})) as receiver:
        _, secret = _subscribe(svc, tenant, receiver.url)
        receiver.secrets.append(secret)
        (delivery_id,) = _deliver_event(svc, tenant)

        outcome = sending.send_delivery(svc, str(delivery_id))
        again = sending.send_delivery(svc, str(delivery_id))

    assert (outcome.status, outcome.status_code, again.status) == ("succeeded", 200, "skipped")
    assert receiver.count() == 1 and receiver.received[0].verified
    with svc.sessions() as session:
        (attempt,) = session.scalars(select(DeliveryAttempt)
                                     .where(DeliveryAttempt.delivery_id == delivery_id))
    assert (attempt.attempt, attempt.status_code) == (1, 200)
    assert attempt.duration_ms is not None and attempt.response_excerpt == "ok"
    delivery = _get(svc, Delivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("succeeded", 1, None)
    assert (delivery.last_status_code, delivery.last_response_excerpt, delivery.last_error) == \
        (200, "ok", None)
    assert delivery.last_duration_ms == attempt.duration_ms
    assert delivery.delivered_at is not None


def test_failing_subscriber_follows_its_schedule_then_dead_letters(svc, tenant):
    with subscriber(default=(500, {})) as receiver:
        sub_id, _ = _subscribe(svc, tenant, receiver.url, schedule=[0.05, 0.1])
        (delivery_id,) = _deliver_event(svc, tenant)

        first = sending.send_delivery(svc, str(delivery_id))
        assert first.status == "failed" and first.attempt == 1
        # A short first wait also gets a countdown message (the 5 s case).
        assert svc.dispatcher.sent[-1][0] == "hub.deliveries.send"
        second = _drive_due(svc, delivery_id)
        third = _drive_due(svc, delivery_id)

    assert (second.status, third.status) == ("failed", "dead")
    assert receiver.count() == 3
    delivery = _get(svc, Delivery, delivery_id)
    assert delivery.attempts == 3 and delivery.last_status_code == 500
    sub = _get(svc, Subscription, sub_id)
    assert sub.active and sub.consecutive_failures == 3 and sub.failing_since is not None
    with svc.sessions() as session:
        letter = session.scalars(select(DeadLetter).where(
            DeadLetter.tenant_id == tenant, DeadLetter.origin == "delivery")).one()
    assert letter.kwargs == {"delivery_id": str(delivery_id)}


def test_subscription_failing_for_the_whole_period_is_disabled(svc, tenant, redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe("integration.subscription.disabled")
    wait_for(lambda: pubsub.get_message(timeout=0.1))
    with subscriber(default=(500, {})) as receiver:
        sub_id, _ = _subscribe(svc, tenant, receiver.url, schedule=[3600] * 5)
        first, waiting = _deliver_event(svc, tenant)[0], _deliver_event(svc, tenant)[0]
        sending.send_delivery(svc, str(first))
        with svc.sessions() as session, session.begin():
            session.execute(update(Subscription).where(Subscription.id == sub_id).values(
                failing_since=utcnow() - timedelta(days=5, seconds=1)))
        with svc.sessions() as session, session.begin():
            session.execute(update(Delivery).where(Delivery.id == first).values(
                next_attempt_at=utcnow()))

        outcome = sending.send_delivery(svc, str(first))

        def disabled_event():
            message = pubsub.get_message(timeout=0.1)
            return message and message["type"] == "message" and \
                json.loads(message["data"])["tenant"] == tenant and json.loads(message["data"])

        event = wait_for(disabled_event)
    pubsub.close()
    sub = _get(svc, Subscription, sub_id)
    assert outcome.status == "cancelled" and not sub.active
    assert "only failures" in sub.disabled_reason
    assert _get(svc, Delivery, waiting).status == "cancelled"
    assert event["data"]["subscription_id"] == str(sub_id)


def _metric(outcome):
    return REGISTRY.get_sample_value("hub_deliveries_total", {"outcome": outcome}) or 0


def test_410_gone_disables_the_subscription(svc, tenant):
    gone_before = _metric("gone")
    with subscriber(default=(410, {})) as receiver:
        sub_id, _ = _subscribe(svc, tenant, receiver.url)
        (delivery_id,) = _deliver_event(svc, tenant)
        (later,) = _deliver_event(svc, tenant)

        outcome = sending.send_delivery(svc, str(delivery_id))
        after = sending.send_delivery(svc, str(later))

    sub = _get(svc, Subscription, sub_id)
    assert outcome.status == "cancelled" and after.status == "skipped"
    assert not sub.active and "410" in sub.disabled_reason
    assert receiver.count() == 1
    assert _metric("gone") == gone_before + 1


def test_redirect_counts_as_a_failure(svc, tenant):
    with subscriber(default=(301, {"Location": "http://127.0.0.1:1/elsewhere"})) as receiver:
        _subscribe(svc, tenant, receiver.url, schedule=[600])
        (delivery_id,) = _deliver_event(svc, tenant)

        outcome = sending.send_delivery(svc, str(delivery_id))

    assert (outcome.status, outcome.status_code) == ("failed", 301)
    assert receiver.count() == 1


@pytest.mark.parametrize("retry_after,expected", [
    ("150", 150), ("1000", 200), (None, 100), ("5", 100),
])
def test_throttle_honours_retry_after_within_the_schedule(svc, tenant, retry_after, expected):
    headers = {"Retry-After": retry_after} if retry_after else {}
    with subscriber(default=(429, headers)) as receiver:
        _subscribe(svc, tenant, receiver.url, schedule=[100])
        (delivery_id,) = _deliver_event(svc, tenant)
        before = utcnow()

        outcome = sending.send_delivery(svc, str(delivery_id))

    after = utcnow()
    assert outcome.status == "failed"
    assert before + timedelta(seconds=expected) <= outcome.next_attempt_at
    assert outcome.next_attempt_at <= after + timedelta(seconds=expected)
    assert not [s for s in svc.dispatcher.sent if s[1] == {"delivery_id": str(delivery_id)}][1:]


def test_throttle_waits_at_least_a_minute():
    assert sending.throttled_wait(5, 10) == 60
    assert sending.throttled_wait(5, None) == 60
    assert sending.throttled_wait(300, 1000) == 600


def test_default_schedule_with_jitter():
    schedule = load_settings().delivery_retry_schedule
    rng = random.Random(7)

    waits = [sending.scheduled_wait(schedule, n, 0.2, rng) for n in range(1, 9)]

    assert schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert waits[-1] is None
    for wait, base in zip(waits, schedule):
        assert 0.8 * base <= wait <= 1.2 * base


def test_per_tenant_schedule_setting(tenant):
    settings = load_settings({"HUB_DELIVERY_TENANT_SCHEDULES": json.dumps({tenant: [1, 2]})})

    assert settings.delivery_schedule(tenant) == (1.0, 2.0)
    assert settings.delivery_schedule("other") == settings.delivery_retry_schedule


def test_rotation_signs_with_both_secrets(svc, tenant):
    with subscriber() as receiver:
        sub_id, old = _subscribe(svc, tenant, receiver.url)
        with svc.sessions() as session, session.begin():
            sub = subscriptions.get(session, tenant, sub_id, lock=True)
            new = subscriptions.rotate_secret(svc.vault, sub).reveal()
        (delivery_id,) = _deliver_event(svc, tenant)
        sending.send_delivery(svc, str(delivery_id))

    got = receiver.received[0]
    assert len(got.headers["Webhook-Signature"].split(" ")) == 2
    for secret in (old, new):
        receiver.secrets[:] = [secret]
        from standardwebhooks import Webhook

        Webhook(secret).verify(got.body, got.headers)


def test_bulk_replay_dry_run_then_real_keeps_webhook_id(svc, tenant):
    with subscriber() as receiver:
        _, secret = _subscribe(svc, tenant, receiver.url)
        receiver.secrets.append(secret)
        paid = _deliver_event(svc, tenant, event_type="invoice.paid")[0]
        other = _deliver_event(svc, tenant, event_type="customer.created")[0]
        for delivery_id in (paid, other):
            sending.send_delivery(svc, str(delivery_id))
        flt = DeliveryFilter(tenant=tenant, event_type="stripe.invoice.*",
                             since=utcnow() - timedelta(minutes=5), statuses=("succeeded",))

        svc.dispatcher.sent.clear()
        dry = sending.replay(svc, flt, dry_run=True)
        assert dry["count"] == 1 and svc.dispatcher.sent == []
        assert _get(svc, Delivery, paid).status == "succeeded"

        real = sending.replay(svc, flt)
        assert svc.dispatcher.sent == [("hub.deliveries.send", {"delivery_id": str(paid)},
                                        svc.settings.queue("replay"))]
        sending.send_delivery(svc, str(paid))

    first, replayed = [r for r in receiver.received
                       if json.loads(r.body)["type"] == "stripe.invoice.paid"]
    assert real["count"] == 1 and real["deliveries"][0]["id"] == str(paid)
    assert replayed.headers["Webhook-Id"] == first.headers["Webhook-Id"]
    assert replayed.body == first.body and replayed.verified


def test_lost_delivery_message_is_sent_by_beat(svc, tenant):
    with subscriber() as receiver:
        _subscribe(svc, tenant, receiver.url)
        (delivery_id,) = _deliver_event(svc, tenant)  # its message is only recorded: "lost"
        with svc.sessions() as session, session.begin():
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                next_attempt_at=utcnow() - timedelta(seconds=1)))

        outcome = _drive_due(svc, delivery_id)

    assert outcome.status == "succeeded" and receiver.count() == 1


def test_disabled_subscription_is_not_delivered(svc, tenant):
    with subscriber() as receiver:
        sub_id, _ = _subscribe(svc, tenant, receiver.url)
        (delivery_id,) = _deliver_event(svc, tenant)
        with svc.sessions() as session, session.begin():
            subscriptions.disable(session, subscriptions.get(session, tenant, sub_id),
                                  "operator")

        outcome = sending.send_delivery(svc, str(delivery_id))

    assert outcome.status == "skipped" and receiver.count() == 0
    assert _get(svc, Delivery, delivery_id).status == "cancelled"


def test_a_success_clears_the_failure_record(svc, tenant):
    with subscriber(answers=[(503, {})], default=(200, {})) as receiver:
        sub_id, _ = _subscribe(svc, tenant, receiver.url, schedule=[0.05])
        (delivery_id,) = _deliver_event(svc, tenant)
        sending.send_delivery(svc, str(delivery_id))
        assert _get(svc, Subscription, sub_id).consecutive_failures == 1
        with svc.sessions() as session, session.begin():
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                next_attempt_at=utcnow()))

        outcome = sending.send_delivery(svc, str(delivery_id))

    sub = _get(svc, Subscription, sub_id)
    assert outcome.status == "succeeded" and receiver.count() == 2
    assert (sub.consecutive_failures, sub.failing_since) == (0, None)


def test_a_delivery_whose_worker_died_is_sent_again_after_its_lease(svc, tenant):
    with subscriber() as receiver:
        _subscribe(svc, tenant, receiver.url)
        (delivery_id,) = _deliver_event(svc, tenant)
        with svc.sessions() as session, session.begin():  # claimed, then the worker vanished
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                status="delivering", attempts=1, next_attempt_at=utcnow() + timedelta(minutes=5)))
        assert sending.send_delivery(svc, str(delivery_id)).status == "skipped"
        with svc.sessions() as session, session.begin():
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                next_attempt_at=utcnow() - timedelta(seconds=1)))

        outcome = _drive_due(svc, delivery_id)

    assert (outcome.status, outcome.attempt) == ("succeeded", 2) and receiver.count() == 1


def test_private_destinations_are_refused_when_not_allowed(tenant):
    guarded = Services(load_settings(allow_private_networks=False), RecordingDispatcher())
    try:
        with guarded.sessions() as session, session.begin(), pytest.raises(SSRFRefused):
            subscriptions.add(session, guarded.vault, guarded.settings, tenant=tenant,
                              url="http://127.0.0.1:9/hooks")
        with guarded.sessions() as session, session.begin():  # e.g. DNS changed since
            sub = Subscription(tenant_id=tenant, url="http://127.0.0.1:9/hooks",
                               secret=guarded.vault.encrypt(["whsec_" + "A" * 32]))
            session.add(sub)
        (delivery_id,) = _deliver_event(guarded, tenant)

        outcome = sending.send_delivery(guarded, str(delivery_id))
        delivery = _get(guarded, Delivery, delivery_id)
    finally:
        guarded.close()

    assert outcome.status == "failed" and outcome.status_code is None
    assert "refusing to connect" in delivery.last_error


def test_a_slow_subscriber_times_out_and_is_retried(tenant):
    release = threading.Event()

    def stuck(request):
        release.wait(10)
        return Response("late", status=200)

    impatient = Services(load_settings(delivery_timeout=0.3, delivery_jitter=0.0),
                         RecordingDispatcher())
    try:
        with serve(stuck) as server:
            _subscribe(impatient, tenant, server.url + "/hooks", schedule=[600])
            (delivery_id,) = _deliver_event(impatient, tenant)

            outcome = sending.send_delivery(impatient, str(delivery_id))
            release.set()
        delivery = _get(impatient, Delivery, delivery_id)
    finally:
        release.set()
        impatient.close()

    assert (outcome.status, outcome.status_code) == ("failed", None)
    assert "timed out" in delivery.last_error and delivery.last_duration_ms < 5000


def test_bulk_replay_with_a_rate_is_scheduled_in_postgresql_and_sent_by_beat(svc, tenant):
    with subscriber() as receiver:
        _, secret = _subscribe(svc, tenant, receiver.url)
        receiver.secrets.append(secret)
        ids = [_deliver_event(svc, tenant)[0] for _ in range(3)]
        for delivery_id in ids:
            sending.send_delivery(svc, str(delivery_id))
        flt = DeliveryFilter(tenant=tenant, since=utcnow() - timedelta(minutes=5),
                             statuses=("succeeded",))
        svc.dispatcher.sent.clear()

        # One every 10 s: the first is due now, the others well after this test's steps.
        result = sending.replay(svc, flt, rate=0.1)
        rows = [_get(svc, Delivery, d) for d in ids]
        assert svc.dispatcher.sent == []
        assert [r.status for r in rows] == ["pending"] * 3
        # Attempts keep counting (each was sent once); the schedule starts over.
        assert [(r.attempts, r.schedule_from) for r in rows] == [(1, 1)] * 3
        gaps = [(b.next_attempt_at - a.next_attempt_at).total_seconds()
                for a, b in itertools.pairwise(rows)]
        assert gaps == [10.0, 10.0]
        assert result["last_scheduled_at"] == rows[-1].next_attempt_at

        sending.send_due(svc)  # other tests' due rows may be sent too: shared database
        sent = {i for name, kwargs, _queue in svc.dispatcher.sent
                if name == "hub.deliveries.send_batch" for i in kwargs["delivery_ids"]}
        assert str(ids[0]) in sent
        assert not sent & {str(ids[1]), str(ids[2])}


def test_bulk_replay_refuses_a_rate_that_is_not_positive(svc, tenant):
    with pytest.raises(ValidationError, match="rate must be a positive"):
        sending.replay(svc, DeliveryFilter(tenant=tenant), rate=0)


def _send_one_to(svc, tenant, answer):
    """Send one event's delivery to a local receiver that runs ``answer(delivery_id)``
    for the POST (and answers what it returns); (delivery id, outcome)."""
    state: dict[str, object] = {}
    with serve(lambda request: answer(state["id"])) as server:
        _subscribe(svc, tenant, server.url + "/hooks")
        (delivery_id,) = _deliver_event(svc, tenant)
        state["id"] = delivery_id
        return delivery_id, sending.send_delivery(svc, str(delivery_id))


def test_the_attempt_is_logged_before_the_post_leaves(svc, tenant):
    seen_at_receiver: list[list[tuple[int, int | None]]] = []

    def answer(delivery_id):
        with svc.sessions() as session:
            seen_at_receiver.append([(a.attempt, a.status_code) for a in session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id))])
        return Response("ok", status=200)

    delivery_id, outcome = _send_one_to(svc, tenant, answer)

    assert outcome.status == "succeeded"
    # While the request was at the receiver, attempt 1 was already in the log, unanswered.
    assert seen_at_receiver == [[(1, None)]]
    with svc.sessions() as session:
        shown = sending.show(session, tenant, str(delivery_id))
    assert [(a["attempt"], a["status_code"], a["outcome_known"])
            for a in shown["attempt_log"]] == [(1, 200, True)]


def test_an_attempt_deleted_while_its_post_was_out_is_written_again_with_the_answer(
        svc, tenant):
    def answer(delivery_id):
        with svc.sessions() as session, session.begin():  # an operator's clean-up, say
            session.execute(delete(DeliveryAttempt)
                            .where(DeliveryAttempt.delivery_id == delivery_id))
        return Response("late", status=202)

    delivery_id, outcome = _send_one_to(svc, tenant, answer)

    assert (outcome.status, outcome.status_code) == ("succeeded", 202)
    with svc.sessions() as session:
        (attempt,) = session.scalars(select(DeliveryAttempt)
                                     .where(DeliveryAttempt.delivery_id == delivery_id))
    assert (attempt.attempt, attempt.status_code, attempt.response_excerpt) == (1, 202, "late")


def test_a_batch_is_posted_concurrently_and_each_delivery_keeps_its_own_fate(svc, tenant):
    with subscriber(delay=0.5) as slow, subscriber(default=(500, {})) as broken:
        slow_sub, secret = _subscribe(svc, tenant, slow.url, events=["stripe.invoice.*"])
        slow.secrets.append(secret)
        _subscribe(svc, tenant, broken.url, events=["stripe.charge.*"])
        ids = [d for n in range(4) for d in _deliver_event(svc, tenant)]
        ids += _deliver_event(svc, tenant, event_type="charge.failed")
        outcomes = sending.send_deliveries(svc, [*ids, str(uuid.uuid4())])

    assert [o.status for o in outcomes] == ["succeeded"] * 4 + ["failed", "skipped"]
    assert slow.count() == 4 and all(r.verified for r in slow.received)
    assert slow.max_in_flight >= 2  # posted at once, not one after the other
    failed = _get(svc, Delivery, ids[4])
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 1, 500)
    assert failed.last_error == "receiver answered 500" and failed.delivered_at is None
    assert failed.next_attempt_at is not None
    assert outcomes[4].next_attempt_at == failed.next_attempt_at
    assert all(_get(svc, Delivery, i).delivered_at is not None for i in ids[:4])
    assert _get(svc, Subscription, slow_sub).consecutive_failures == 0
