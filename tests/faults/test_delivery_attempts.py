"""A delivery whose worker is killed -9 mid-POST: the attempt is in the log, the one
duplicate that follows is the unavoidable one (same webhook-id), and attempts agree."""

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
from tests.hub.fake_http import serve
from tests.hub.inbox import add_event

pytestmark = pytest.mark.slow


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
        with services.sessions() as session, session.begin():
            subscriptions.add(session, services.vault, services.settings, tenant=tenant,
                              url=server.url + "/hooks")
        event_id = add_event(services.sessions, tenant)
        assert processing.process_event(services, event_id).status == "processed"
        with services.sessions() as session:
            delivery_id = session.scalars(select(Delivery.id)
                                          .where(Delivery.event_id == event_id)).one()
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
