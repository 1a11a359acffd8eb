"""webhooks_web.publisher: the one-LPUSH dispatcher produces what Celery's send_task does,
and a real worker runs what it sends."""

from __future__ import annotations

import base64
import json

from celerydispatch import CeleryDispatcher
from webhooks_web.app import _sender
from webhooks_web.publisher import RedisTaskPublisher

VARYING_HEADERS = {"id", "root_id"}
VARYING_PROPERTIES = {"correlation_id", "delivery_tag"}


def _read(broker, queue):
    message = json.loads(broker.rpop(queue))
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_envelope_is_the_one_send_task_produces(web_settings, broker, settings):
    celery = _sender(web_settings)
    publisher = RedisTaskPublisher(celery)
    queue = settings.queue("webhooks")
    broker.delete(queue)
    try:
        CeleryDispatcher(celery).send("hub.webhooks.process", {"event_id": "e-1"},
                                      task_id="by-celery")
        publisher.send("hub.webhooks.process", {"event_id": "e-1"}, task_id="by-publisher")
        theirs, ours = _read(broker, queue), _read(broker, queue)  # FIFO: LPUSH, RPOP
    finally:
        broker.delete(queue)
        publisher.close()
        celery.close()

    assert theirs["headers"]["id"] == "by-celery" and ours["headers"]["id"] == "by-publisher"
    assert ours.keys() == theirs.keys()
    assert ours["body"] == theirs["body"]
    assert {k: v for k, v in ours["headers"].items() if k not in VARYING_HEADERS} == \
        {k: v for k, v in theirs["headers"].items() if k not in VARYING_HEADERS}
    assert {k: v for k, v in ours["properties"].items() if k not in VARYING_PROPERTIES} == \
        {k: v for k, v in theirs["properties"].items() if k not in VARYING_PROPERTIES}


def test_a_real_worker_runs_a_published_task(on_broker):
    # Redis: one LPUSH per send (one for a batch); RabbitMQ: send_task, into quorum queues
    # only the RabbitMQ worker reads.
    publisher = RedisTaskPublisher(on_broker.sender)
    try:
        task_ids = [publisher.send("hub.ping", {}),
                    *publisher.send_many("hub.ping", [{}, {}, {}])]
    finally:
        publisher.close()

    results = [on_broker.client.AsyncResult(task_id).get(timeout=30) for task_id in task_ids]
    assert [r["pong"] for r in results] == ["ok"] * 4


def test_send_many_pushes_every_message_in_one_go_first_in_first_out(web_settings, broker,
                                                                      settings):
    celery = _sender(web_settings)
    publisher = RedisTaskPublisher(celery)
    queue = settings.queue("webhooks")
    broker.delete(queue)
    try:
        CeleryDispatcher(celery).send("hub.webhooks.process", {"event_id": "e-0"})
        task_ids = publisher.send_many("hub.webhooks.process",
                                       [{"event_id": f"e-{n}"} for n in (1, 2, 3)])
        theirs = _read(broker, queue)
        ours = [_read(broker, queue) for _ in task_ids]
        assert broker.llen(queue) == 0
    finally:
        broker.delete(queue)
        publisher.close()
        celery.close()

    assert [m["body"][1] for m in ours] == [{"event_id": f"e-{n}"} for n in (1, 2, 3)]
    assert [m["headers"]["id"] for m in ours] == task_ids and len(set(task_ids)) == 3
    for message in ours:
        assert {k: v for k, v in message["headers"].items()
                if k not in VARYING_HEADERS | {"kwargsrepr"}} == \
            {k: v for k, v in theirs["headers"].items()
             if k not in VARYING_HEADERS | {"kwargsrepr"}}
        assert message["headers"]["kwargsrepr"] == repr(message["body"][1])
