"""The event bus: pub/sub for live listeners, a Redis Stream for consumer groups that
must catch up after a restart, and publishing that never fails the work."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from pathlib import Path

import redis

from hub.platform import events, metrics
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.events import EventBus
from hub.platform.services import Services


def _stream_events(client: redis.Redis, stream: str, tenant: str) -> list[dict]:
    return [json.loads(fields["event"]) for _id, fields in client.xrange(stream)
            if fields["tenant"] == tenant]


def test_an_event_goes_to_its_channel_and_to_the_stream(services, redis_client, tenant):
    pubsub = redis_client.pubsub()
    pubsub.subscribe("integration.cache.miss")
    pubsub.get_message(timeout=1)

    sent = events.publish(services.events, "cache.miss", tenant, {"integration": "crm"})

    assert sent is not None
    live = None
    deadline = time.monotonic() + 5
    while live is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            live = json.loads(message["data"])
            if live["tenant"] != tenant:
                live = None
    pubsub.close()
    stored = _stream_events(redis_client, services.settings.event_stream, tenant)
    assert live == sent
    assert stored == [sent]


def test_a_consumer_group_catches_up_after_a_restart(services, redis_client, tenant):
    stream = services.settings.event_stream
    group = f"billing-{tenant}"
    redis_client.xgroup_create(stream, group, id="$", mkstream=True)

    first = [events.publish(services.events, "request.completed", tenant, {"n": n})
             for n in range(2)]
    consumer = redis.Redis.from_url(services.settings.redis_url, decode_responses=True)
    read = consumer.xreadgroup(group, "billing-1", {stream: ">"}, count=10, block=2000)
    entries = [(entry_id, json.loads(f["event"])) for entry_id, f in read[0][1]
               if f["tenant"] == tenant]
    assert [e["id"] for _i, e in entries] == [e["id"] for e in first]
    consumer.xack(stream, group, entries[0][0])  # handled the first, then "crashed"
    consumer.close()

    missed = [events.publish(services.events, "request.failed", tenant, {"n": n})
              for n in range(2, 4)]

    restarted = redis.Redis.from_url(services.settings.redis_url, decode_responses=True)
    # After a restart: first our own unacknowledged entries (id 0), then what is new (>).
    pending = restarted.xreadgroup(group, "billing-1", {stream: "0"}, count=10)
    new = restarted.xreadgroup(group, "billing-1", {stream: ">"}, count=10, block=2000)
    seen = [json.loads(f["event"]) for batch in (pending, new) for _s, entries in batch
            for _id, f in entries if f["tenant"] == tenant]
    assert [e["id"] for e in seen] == [first[1]["id"], *(e["id"] for e in missed)]
    assert [e["data"]["n"] for e in seen] == [1, 2, 3]
    for batch in (pending, new):
        for _s, batch_entries in batch:
            restarted.xack(stream, group, *(entry_id for entry_id, _f in batch_entries))
    assert restarted.xpending(stream, group)["pending"] == 0
    restarted.xgroup_destroy(stream, group)
    restarted.close()


def test_the_stream_is_capped(redis_client, tenant, settings):
    stream = settings.redis_key("test-capped", tenant)
    bus = EventBus(redis.Redis.from_url(settings.redis_url, decode_responses=True),
                   stream=stream, maxlen=10)
    for n in range(600):
        bus.publish("cache.hit", tenant, {"n": n})
    length = redis_client.xlen(stream)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), never below 10.
    assert 10 <= length < 600
    redis_client.delete(stream)
    bus.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dropped(event_type: str) -> float:
    return metrics.EVENTS_DROPPED.child(event_type)._value.get()


def test_publishing_fails_open_and_fast_when_redis_is_gone(tenant):
    settings = load_settings(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    services = Services(settings, RecordingDispatcher())
    bus = services.events
    before = _dropped("request.sent")

    started = time.monotonic()
    results = [bus.publish("request.sent", tenant, {"n": n}) for n in range(50)]
    elapsed = time.monotonic() - started

    assert results == [None] * 50
    assert _dropped("request.sent") - before == 50
    # One refused connection (no backoff), then the bus drops events without trying
    # Redis again for a while.
    assert elapsed < 1.0
    bus.close()
    services.close()


class _Handled(Exception):
    """Ends README's consumer loop once the test has seen what it waits for."""


def _readme_consumer() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    (consumer,) = [block for block in blocks if "xreadgroup" in block]
    return consumer


def test_readmes_consumer_takes_back_its_whole_backlog_after_a_restart(services, tenant):
    """README's consumer, run as written (the test's Redis URL and stream): restarted
    with more unacknowledged entries than one read returns (count=100), it handles
    them all, then the new ones."""
    settings = services.settings
    stream = f"{settings.redis_prefix}readme-events-{tenant}"
    reader = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        reader.xgroup_create(stream, "billing", id="$", mkstream=True)
        for n in range(150):
            reader.xadd(stream, {"type": "request.failed", "tenant": tenant,
                                 "event": json.dumps({"n": n})})
        # The consumer read them, then died before acknowledging any.
        assert len(reader.xreadgroup("billing", "billing-1", {stream: ">"}, count=500)[0][1]) == 150
        reader.xadd(stream, {"type": "request.failed", "tenant": tenant,
                             "event": json.dumps({"n": 150})})

        handled: list[int] = []

        def handle(event: dict) -> None:
            handled.append(event["n"])
            if event["n"] == 150:
                raise _Handled

        code = (_readme_consumer()
                .replace("redis.Redis(decode_responses=True)",
                         f"redis.Redis.from_url({settings.redis_url!r}, decode_responses=True)")
                .replace('"hub:events"', repr(stream))
                .replace("block=5000", "block=200"))

        def consume() -> None:
            with contextlib.suppress(_Handled):
                exec(compile(code, "README.md consumer", "exec"),  # noqa: S102 - README's code
                     {"handle": handle, "__name__": "readme"})

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        consumer.join(timeout=20)  # returns once the newest entry is handled
        assert sorted(handled) == list(range(151))
    finally:
        reader.delete(stream)
        reader.close()
