"""A webhook body has a total read deadline (WEB_BODY_TIMEOUT) under the default gevent
workers (issue 9, item 11's gap): a body sent a byte a second is answered 408 once the
deadline passes and nothing is stored, instead of being held for minutes and then
accepted. Through gunicorn as the Procfile runs it, with a short deadline set by env."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.webhooks_web.gunicorn_proc import gunicorn
from tests.webhooks_web.test_receive import rows

pytestmark = pytest.mark.slow
DEADLINE = 2
BODY = b"x" * 60


@pytest.fixture(scope="module")
def server(web_settings, tmp_path_factory) -> Iterator[str]:
    with gunicorn(web_settings.broker_url, tmp_path_factory.mktemp("metrics"),
                  WEB_BODY_TIMEOUT=str(DEADLINE)) as base:
        yield base


class Trickle:
    """A client sending its headers at once, then its body a byte a second."""

    def __init__(self, base: str, path: str) -> None:
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                          f"Content-Type: text/plain\r\nContent-Length: {len(BODY)}\r\n\r\n"
                          .encode())
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        for byte in BODY:
            if self.stop.wait(1.0):  # the client's pace: one byte a second
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                return  # the server closed the connection
            self.sent += 1

    def answer(self, timeout: float) -> bytes:
        """What the server sent back before it closed, or within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        received = b""
        try:
            while b"\r\n\r\n" not in received or not received.endswith(b"}\n"):
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_a_body_trickling_past_the_deadline_is_408_and_nothing_is_stored(
        server, make_endpoint, sessions):
    created = make_endpoint(source="plain", scheme="none")
    started = time.monotonic()
    slow = Trickle(server, f"/api/v1/webhooks/plain/{created.token}")
    try:
        answer = slow.answer(timeout=DEADLINE + 15)
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), (status_line, elapsed)
    assert b"REQUEST_TIMEOUT" in answer
    assert elapsed < DEADLINE + 5, elapsed
    assert slow.sent < len(BODY)
    # The others are still served, and nothing of the slow one was stored.
    assert requests.get(f"{server}/health", timeout=5).status_code == 200
    assert rows(sessions, created.id) == []


def test_a_body_within_the_deadline_is_stored(server, make_endpoint, sessions):
    created = make_endpoint(source="plain", scheme="none")
    response = requests.post(f"{server}/api/v1/webhooks/plain/{created.token}",
                             data=b'{"id": "evt_1"}', timeout=10)
    assert response.status_code == 202
    assert len(rows(sessions, created.id)) == 1


@pytest.mark.parametrize("worker_class", ["gthread", "sync"])
def test_threaded_and_sync_workers_still_take_webhooks(web_settings, make_endpoint, sessions,
                                                       tmp_path, worker_class):
    created = make_endpoint(source="plain", scheme="none")
    with gunicorn(web_settings.broker_url, tmp_path, WEB_WORKER_CLASS=worker_class,
                  WEB_BODY_TIMEOUT=str(DEADLINE)) as base:
        response = requests.post(f"{base}/api/v1/webhooks/plain/{created.token}",
                                 data=b'{"id": "evt_1"}', headers={"Connection": "close"},
                                 timeout=10)
    assert response.status_code == 202
    assert len(rows(sessions, created.id)) == 1
