"""Hostile clients against the real web process (gunicorn with webhooks_web/gunicorn.conf.py,
the Procfile's command): issue 9, items 10 (chunked bodies over the limit) and 11 (slow
clients)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
import stripe

from tests.webhooks_web.gunicorn_proc import gunicorn
from tests.webhooks_web.slow_clients import SlowClients
from tests.webhooks_web.test_receive import rows

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
SECRET = "whsec_hostile_server"


@pytest.fixture(scope="module")
def server(web_settings, tmp_path_factory) -> Iterator[str]:
    with gunicorn(web_settings.broker_url, tmp_path_factory.mktemp("metrics")) as base:
        yield base


def chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """``size`` bytes in pieces: requests sends an iterator with Transfer-Encoding:
    chunked and no Content-Length."""
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield b"x" * n
        sent += n


# -- item 10: over the limit is 413 with or without Content-Length ------------------------

def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(server, make_endpoint,
                                                                    sessions):
    created = make_endpoint(source="plain", scheme="none")
    url = f"{server}/api/v1/webhooks/plain/{created.token}"

    chunked = requests.post(url, data=chunks(MiB + MiB // 2), timeout=30)
    sized = requests.post(url, data=b"x" * (MiB + MiB // 2), timeout=30)

    assert (chunked.status_code, sized.status_code) == (413, 413)
    assert chunked.json()["error"]["code"] == sized.json()["error"]["code"]
    assert rows(sessions, created.id) == []


def test_a_chunked_body_of_exactly_the_limit_is_stored_whole(server, make_endpoint, sessions):
    created = make_endpoint(source="plain", scheme="none")

    response = requests.post(f"{server}/api/v1/webhooks/plain/{created.token}",
                             data=chunks(MiB), timeout=30)

    assert response.status_code == 202
    [row] = rows(sessions, created.id)
    assert len(row.body) == MiB


# -- item 11: slow clients do not stop the web process ------------------------------------

def signed_post(url: str) -> requests.Response:
    body = json.dumps({"id": f"evt_{time.monotonic_ns()}", "type": "charge.succeeded"})
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    return requests.post(url, data=body, timeout=3, headers={
        "Stripe-Signature": header, "Content-Type": "application/json"})


def test_two_hundred_slow_clients_do_not_stop_health_or_real_webhooks(server, make_endpoint,
                                                                      sessions):
    created = make_endpoint(secrets=[SECRET])
    path = f"/api/v1/webhooks/stripe/{created.token}"
    slow = SlowClients(server, path, 200)
    try:
        # While every slow client is connected and trickling (3 s of it): the others are
        # served, each within the 3 s a provider would wait here.
        answers = []
        for _ in range(3):
            answers.append(requests.get(server + "/health", timeout=3).status_code)
            answers.append(signed_post(server + path).status_code)
            time.sleep(1)  # pacing the probes over the attack, not synchronising
    finally:
        slow.close()

    assert answers == [200, 202] * 3
    assert len(rows(sessions, created.id)) == 3
