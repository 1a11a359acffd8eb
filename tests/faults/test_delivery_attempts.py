"""A delivery whose worker is killed -9 mid-POST: the attempt is in the log, the one
duplicate that follows is the unavoidable one (same webhook-id), and attempts agree.
A broker blip mid-POST costs nothing: the delivery finishes and is sent once."""

from __future__ import annotations

import os
import signal
import threading
import uuid

import pytest
from sqlalchemy import select, update
from werkzeug.wrappers import Response

from hub.deliveries import sending, subscriptions
from hub.platform.models import Delivery, DeliveryAttempt
from hub.platform.scheduler import utcnow
from hub.webhooks import processing
from tests.calls.processes import worker_process
from tests.conftest import Broker
from tests.faults.beat import wait_for
from tests.faults.servers import redis_server
from tests.hub.fake_http import serve
from tests.hub.inbox import add_event

pytestmark = pytest.mark.slow


def _one_delivery_to(services, tenant: str, url: str):  # type: ignore[no-untyped-def]
    """A subscription to ``url`` and an event processed for it: its one delivery's id."""
    with services.sessions() as session, session.begin():
        subscriptions.add(session, services.vault, services.settings, tenant=tenant, url=url)
    event_id = add_event(services.sessions, tenant)
    assert processing.process_event(services, event_id).status == "processed"
    with services.sessions() as session:
        return session.scalars(select(Delivery.id).where(Delivery.event_id == event_id)).one()


def test_worker_killed_mid_post_leaves_the_attempt_logged(client_app, services, settings,
                                                          tenant):
    arrived, release = threading.Event(), threading.Event()
    ids: list[str] = []

    def receiver(request):
        ids.append(request.headers["webhook-id"])
        if len(ids) == 1:
            arrived.set()
            release.wait(30)  # hold the first POST while its worker is killed
        return Response("ok", status=200)

    with serve(receiver) as server:
        delivery_id = _one_delivery_to(services, tenant, server.url + "/hooks")
        queue = settings.queue(f"deliver-{uuid.uuid4().hex[:6]}")
        with worker_process(client_app, [queue], app="tasks") as worker:
            client_app.send_task("hub.deliveries.send", kwargs={"delivery_id": str(delivery_id)},
                                 queue=queue)
            assert arrived.wait(60), worker.log_path.read_text()[-3000:]
            os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, mid-request
            worker.wait(timeout=10)
        release.set()

        with services.sessions() as session:
            delivery = session.get(Delivery, delivery_id)
            logged = session.scalars(select(DeliveryAttempt.attempt)
                                     .where(DeliveryAttempt.delivery_id == delivery_id)).all()
        assert (delivery.status, delivery.attempts, logged) == ("delivering", 1, [1])

        # Once the lease is over, beat sends it again (same webhook-id): the one duplicate.
        with services.sessions() as session, session.begin():
            session.execute(update(Delivery).where(Delivery.id == delivery_id)
                            .values(next_attempt_at=utcnow()))
        outcome = sending.send_delivery(services, str(delivery_id))

    assert (outcome.status, outcome.attempt) == ("succeeded", 2)
    assert len(ids) == 2 and ids[0] == ids[1]
    with services.sessions() as session:
        shown = sending.show(session, tenant, str(delivery_id))
    assert shown["attempts"] == 2
    assert [(a["attempt"], a["status_code"], a["outcome_known"])
            for a in shown["attempt_log"]] == [(1, None, False), (2, 200, True)]


#: The worker's redelivery settings scaled down (as in test_redelivery.py), so a message
#: whose ack was lost with the connection comes back within the test.
SCALED = {"HUB_VISIBILITY_TIMEOUT": "12", "HUB_MAX_COUNTDOWN": "2",
          "HUB_TASK_TIME_LIMIT": "8", "HUB_TASK_SOFT_TIME_LIMIT": "6",
          "HUB_UNACKED_RESTORE_INTERVAL": "1"}


def test_a_broker_blip_mid_post_lets_the_delivery_finish_once(services, settings, tenant):
    # Issue 9 item 6: with worker_cancel_long_running_tasks_on_connection_loss = True the
    # worker terminated a delivery whose broker connection dropped mid-POST, and beat
    # sent it again once its lease was over: a duplicate for a mere Redis restart.
    arrived, release = threading.Event(), threading.Event()
    ids: list[str] = []

    def receiver(request):
        ids.append(request.headers["webhook-id"])
        if len(ids) == 1:
            arrived.set()
            release.wait(30)  # hold the POST while the broker restarts
        return Response("ok", status=200)

    with serve(receiver) as server, redis_server() as broker_redis:
        delivery_id = _one_delivery_to(services, tenant, server.url + "/hooks")
        broker = Broker("redis", broker_redis.url, broker_redis.url, settings)
        queue = broker.queue("blip")
        try:
            # DEBUG: a run's "received" line too (at INFO a run is its outcome line).
            with worker_process(broker.app, [queue], app="tasks", loglevel="DEBUG",
                                env={**broker.env, **SCALED}) as worker:
                broker.app.send_task("hub.deliveries.send",
                                     kwargs={"delivery_id": str(delivery_id)}, queue=queue)
                assert arrived.wait(60), worker.log_path.read_text()[-3000:]
                broker_redis.restart(signal.SIGKILL)  # a crash, back at once (AOF)
                wait_for(lambda: "onnection to broker lost" in worker.log_path.read_text(),
                         30, "the worker notices the lost connection")
                release.set()

                def status() -> str:
                    with services.sessions() as session:
                        return session.get(Delivery, delivery_id).status

                wait_for(lambda: status() == "succeeded", 30,
                         "the delivery that was mid-POST records its success")
                # Its ack went with the old connection: the message comes back one
                # visibility timeout later and finds the delivery done.
                client = broker_redis.client()

                def settled() -> bool:
                    log = worker.log_path.read_text()
                    return (not client.hlen("unacked") and not client.llen(queue)
                            and log.count("] received") == log.count("] succeeded in"))

                wait_for(settled, 60, "the message acknowledged, or run again and done")
                client.close()
        finally:
            broker.close()

    assert len(ids) == 1, ids
    with services.sessions() as session:
        shown = sending.show(session, tenant, str(delivery_id))
    assert (shown["status"], shown["attempts"]) == ("succeeded", 1)
    assert [(a["attempt"], a["status_code"], a["outcome_known"])
            for a in shown["attempt_log"]] == [(1, 200, True)]
