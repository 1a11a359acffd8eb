"""How many messages wait in the broker's queues (a Redis broker, as kombu lays it out).

Read by the web app's ``/metrics`` (hub_queue_messages), by beat's webhook
sweeper, which leaves pending events to a backlogged queue instead of adding
copies, and by ``hub integrations delete``, which looks for calls still queued for
the integration. Only for a Redis broker: other brokers report "unknown" (None).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from hub.platform.config import QUEUE_NAMES, REDIS_PY_SCHEMES, Settings

log = logging.getLogger(__name__)

#: kombu's Redis transport keeps a queue's messages of priority p > 0 in "<queue>\x06\x16<p>".
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def broker_queues(settings: Settings) -> dict[str, str]:
    """Short queue name -> the broker's queue name, for every queue the hub routes to."""
    return {name: settings.queue(name) for name in ("celery", *QUEUE_NAMES)}


def broker_client(settings: Settings) -> redis.Redis | None:
    """A client for the broker when it is Redis, else None."""
    url = settings.effective_broker_url
    if not url.startswith(REDIS_PY_SCHEMES):
        return None
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def lengths(broker: redis.Redis, queues: Sequence[str]) -> list[int]:
    """Messages waiting in each of ``queues`` (all priorities), in one round trip."""
    pipe = broker.pipeline(transaction=False)
    for queue in queues:
        for priority in KOMBU_PRIORITY_STEPS:
            pipe.llen(queue if priority == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{priority}")
    counts = pipe.execute()
    steps = len(KOMBU_PRIORITY_STEPS)
    return [sum(counts[i * steps:(i + 1) * steps]) for i in range(len(queues))]


def waiting(settings: Settings, name: str) -> int | None:
    """Messages waiting in the hub queue ``name``; None when the broker cannot say."""
    broker = broker_client(settings)
    if broker is None:
        return None
    try:
        return lengths(broker, [settings.queue(name)])[0]
    except redis.RedisError as exc:
        log.warning("could not count the messages waiting in %s: %s", name, exc)
        return None
    finally:
        broker.close()


#: Messages read per LRANGE while looking for an integration's queued calls.
SCAN_CHUNK = 1000


#: kombu's Redis transport keeps every message a worker has taken and not yet
#: acknowledged in this hash (delivery tag -> ``[envelope, exchange, routing_key]``):
#: calls running, prefetched, or waiting there for their countdown (a retry's backoff).
KOMBU_UNACKED_KEY = "unacked"


def call_target(raw: bytes | str | dict[str, Any]) -> tuple[str, str] | None:
    """``(tenant, integration)`` of a queued ``hub.call`` or ``hub.<adapter>.<operation>``
    message as kombu's Redis transport stores it (Celery message protocol 2: a JSON
    envelope whose base64 body is ``[args, kwargs, embed]``); None for anything else."""
    try:
        envelope = raw if isinstance(raw, dict) else json.loads(raw)
        task = str(envelope.get("headers", {}).get("task", ""))
        if not (task == "hub.call" or (task.startswith("hub.") and task.count(".") == 2)):
            return None
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    tenant = kwargs.get("tenant", args[0] if len(args) > 0 else None)
    integration = kwargs.get("integration", args[1] if len(args) > 1 else None)
    if tenant is None or integration is None:
        return None
    return str(tenant), str(integration)


def count_calls_for(broker: redis.Redis, queues: Sequence[str], tenant: str,
                    integration: str) -> int:
    """Calls for ``tenant``'s ``integration`` waiting in ``queues`` (every priority).
    Reads the lists in chunks; a message taken meanwhile is simply not counted."""
    wanted = (tenant, integration)
    found = 0
    for queue in queues:
        for priority in KOMBU_PRIORITY_STEPS:
            key = queue if priority == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{priority}"
            start = 0
            while chunk := broker.lrange(key, start, start + SCAN_CHUNK - 1):
                found += sum(1 for raw in chunk if call_target(raw) == wanted)
                start += SCAN_CHUNK
    return found + _held_calls_for(broker, queues, wanted)


def _held_calls_for(broker: redis.Redis, queues: Sequence[str],
                    wanted: tuple[str, str]) -> int:
    """Calls of ``queues`` for ``wanted`` that a worker has taken but not acknowledged:
    on a Redis broker a countdown's message leaves the list at once and waits in the
    worker until due, so the lists alone miss every retry in its backoff."""
    names = set(queues)
    found = 0
    for _tag, raw in broker.hscan_iter(KOMBU_UNACKED_KEY, count=SCAN_CHUNK):
        try:
            envelope, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key in names and call_target(envelope) == wanted:
            found += 1
    return found
