"""The web process's Dispatcher: a Celery task message in one Redis LPUSH.

``Celery.send_task`` costs about 1 ms of CPU per message (producer pool, retry
wrappers, a new Redis client per publish inside kombu): on the 2-core benchmark
machine that alone kept the ingest below half of the durable ceiling
(docs/benchmarks.md). The message itself is still built by Celery
(``app.amqp.as_task_v2``: protocol 2, same headers, routing by ``celeryconfig``);
only the last step is done here, the way kombu's Redis transport does it for a
direct route (anonymous exchange): JSON envelope, base64 body, ``LPUSH`` on the
queue's list. ``tests/webhooks_web/test_publisher.py`` pins the envelope to the
one ``send_task`` produces and runs a message through a real worker.

Anything that is not a plain immediate send to a Redis broker (a countdown, an
AMQP broker) goes through ``send_task`` unchanged.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu.utils.json import dumps

from celerydispatch import CeleryDispatcher
from hub.platform.config import REDIS_PY_SCHEMES

#: kombu's Redis transport: persistent delivery, default priority (the bare queue list).
DELIVERY_MODE = 2
PRIORITY = 0


class RedisTaskPublisher:
    """Dispatcher sending by task name with one LPUSH on a pooled Redis connection."""

    def __init__(self, app: Celery, *, socket_timeout: float = 2.0) -> None:
        self._app = app
        self._fallback = CeleryDispatcher(app)
        url = str(app.conf.broker_url)
        # The fast path writes where kombu's Redis transport writes with its defaults
        # (the queue's own list); any key prefix moves messages elsewhere.
        plain = not (app.conf.broker_transport_options or {}).get("global_keyprefix")
        self._client = (redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                             socket_connect_timeout=socket_timeout)
                        if plain and url.startswith(REDIS_PY_SCHEMES)
                        else None)
        self._routes: dict[str, str] = {}
        self._templates: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}

    def _queue(self, name: str, queue: str | None) -> str:
        if queue:
            return queue
        if name not in self._routes:
            options = self._app.amqp.router.route({}, name, (), {})
            self._routes[name] = options["queue"].name
        return self._routes[name]

    def envelope(self, name: str, kwargs: dict[str, Any], task_id: str,
                 queue: str) -> dict[str, Any]:
        """The kombu Redis envelope of a Celery protocol-2 message for task ``name``."""
        headers, properties, embed = self._template(name)
        body = dumps(((), kwargs, embed)).encode()
        return {"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {**headers, "id": task_id, "root_id": task_id,
                            "kwargsrepr": repr(kwargs)},
                "properties": {**properties, "correlation_id": task_id,
                               "reply_to": self._app.thread_oid,
                               "delivery_info": {"exchange": "", "routing_key": queue},
                               "delivery_tag": str(uuid.uuid4())}}

    def _template(self, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # Celery builds the message once per task name; every later message of that name
        # differs only in its ids, its kwargs and their repr, which envelope() sets.
        # argsrepr/kwargsrepr given: Celery's saferepr would cost more than the rest, and
        # the hub's kwargs are short JSON (ids), whose plain repr is what saferepr gives.
        if name not in self._templates:
            message = self._app.amqp.as_task_v2("template", name, kwargs={}, ignore_result=None,
                                                argsrepr="()", kwargsrepr="{}")
            _args, _kwargs, embed = message.body
            properties = dict(message.properties, delivery_mode=DELIVERY_MODE,
                              priority=PRIORITY, body_encoding="base64")
            self._templates[name] = (message.headers, properties, embed)
        return self._templates[name]

    def send(self, name: str, kwargs: dict[str, Any], *, queue: str | None = None,
             countdown: float | None = None, task_id: str | None = None,
             headers: dict[str, str] | None = None) -> str:
        """Enqueue task ``name`` now; raises redis.RedisError when the broker is down."""
        if self._client is None or countdown or headers:
            return self._fallback.send(name, kwargs, queue=queue, countdown=countdown,
                                       task_id=task_id, headers=headers)
        task_id = task_id or str(uuid.uuid4())
        target = self._queue(name, queue)
        self._client.lpush(target, dumps(self.envelope(name, kwargs, task_id, target)))
        return task_id

    def send_many(self, name: str, kwargs_list: Sequence[dict[str, Any]]) -> list[str]:
        """Enqueue task ``name`` once per kwargs in one LPUSH; raises redis.RedisError."""
        if self._client is None:
            return [self._fallback.send(name, kwargs) for kwargs in kwargs_list]
        if not kwargs_list:
            return []
        target = self._queue(name, None)
        task_ids = [str(uuid.uuid4()) for _ in kwargs_list]
        # LPUSH pushes its values in order, so workers (BRPOP) take them first-in first-out.
        self._client.lpush(target, *(dumps(self.envelope(name, kwargs, task_id, target))
                                     for kwargs, task_id in zip(kwargs_list, task_ids)))
        return task_ids

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
