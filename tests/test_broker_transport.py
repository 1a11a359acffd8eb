"""celerytransport: the hub's Redis broker transport keeps one client object per channel
and carries messages exactly as kombu's does."""

from __future__ import annotations

import dataclasses
import uuid

from kombu import Connection

import celeryconfig
import celerytransport
from hub.platform.config import Settings


def test_the_hubs_app_uses_it_for_a_redis_broker(celery_app, settings: Settings):
    assert settings.effective_broker_url.startswith("redis://")
    with celery_app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, celerytransport.Channel)


def test_settings_for_another_broker_leave_the_transport_to_its_scheme(settings: Settings):
    # Applied over a redis:// app's configuration (as the tests' RabbitMQ apps are), the
    # settings of another broker must unset the Redis transport, not inherit it.
    assert celeryconfig.broker_settings(settings)["broker_transport"] == (
        "celerytransport:Transport")
    for url in ("amqp://guest:guest@127.0.0.1:5672//", "rediss://127.0.0.1:6380/0"):
        other = dataclasses.replace(settings, broker_url=url)
        assert celeryconfig.broker_settings(other)["broker_transport"] is None


def test_a_channel_hands_out_one_client_until_its_pool_is_replaced(settings: Settings):
    with Connection(settings.effective_broker_url, transport=celerytransport.Transport) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given
        channel._disconnect_pools()  # what kombu does after a connection error
        with channel.conn_or_acquire() as after:
            assert after is not first
            assert after.connection_pool is channel.pool
            assert after.ping()


def test_a_message_is_received_held_unacknowledged_and_acknowledged(settings: Settings):
    queue = f"transport-probe-{uuid.uuid4().hex[:8]}"
    with Connection(settings.effective_broker_url, transport=celerytransport.Transport) as conn:
        simple = conn.SimpleQueue(queue)
        try:
            simple.put({"n": 1})
            message = simple.get(timeout=10)
            assert message.payload == {"n": 1}
            channel = simple.channel
            tag = message.delivery_tag
            with channel.conn_or_acquire() as client:
                assert client.hexists(channel.unacked_key, tag)
                message.ack()
                assert not client.hexists(channel.unacked_key, tag)
        finally:
            simple.queue.delete()
            simple.close()
