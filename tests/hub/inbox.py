"""Test helpers for processing and delivery: recorded events, subscribers, polling.

Events are inserted straight into webhook_events (the intake's job is tested on
its own); subscribers are local HTTP servers that check the Standard Webhooks
signature with the reference ``standardwebhooks`` library, as a receiver would.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from werkzeug.wrappers import Request, Response

from hub.platform.models import WebhookEndpoint, WebhookEvent
from tests.hub.fake_http import LocalServer, serve


def add_endpoint(sessions: sessionmaker[Session], tenant: str, source: str = "stripe") -> uuid.UUID:
    with sessions() as session, session.begin():
        endpoint = WebhookEndpoint(tenant_id=tenant, source=source,
                                   token=secrets.token_urlsafe(24), scheme="none")
        session.add(endpoint)
        session.flush()
        return endpoint.id


def add_event(sessions: sessionmaker[Session], tenant: str, *, source: str = "stripe",
              event_type: str | None = "invoice.paid", payload: dict[str, Any] | None = None,
              age: float = 0.0, endpoint_id: uuid.UUID | None = None) -> uuid.UUID:
    """Insert a pending event as the intake would, ``age`` seconds old."""
    endpoint_id = endpoint_id or add_endpoint(sessions, tenant, source)
    body = json.dumps(payload or {"id": "evt_1", "type": event_type, "amount": 4200}).encode()
    with sessions() as session, session.begin():
        row = WebhookEvent(endpoint_id=endpoint_id, tenant_id=tenant, source=source,
                           external_id=f"evt_{uuid.uuid4().hex}", event_type=event_type,
                           headers={"content-type": "application/json",
                                    "stripe-signature": "t=1,v1=must-never-leak"},
                           body=body,
                           received_at=datetime.now(UTC) - timedelta(seconds=age))
        session.add(row)
        session.flush()
        return row.id


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Subscriber:
    """A receiving service: answers a scripted status, verifies every signature."""

    secrets: list[str] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (204, {})
    received: list[Received] = field(default_factory=list)
    server: LocalServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Seconds before each answer (a slow receiver).
    delay: float = 0.0
    #: Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/hooks"

    def _verified(self, request: Request) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(request.get_data(), dict(request.headers))
                return True
            except WebhookVerificationError:
                continue
        return False

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.delay:
            time.sleep(self.delay)  # the receiver being slow is what is simulated
        with self.lock:
            self.in_flight -= 1
            self.received.append(Received(dict(request.headers), request.get_data(),
                                          self._verified(request)))
            status, headers = self.answers.pop(0) if self.answers else self.default
        return Response("ok" if status < 300 else "nope", status=status, headers=headers)

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def subscriber(**kwargs: Any) -> Iterator[Subscriber]:
    sub = Subscriber(**kwargs)
    with serve(sub.handle) as server:
        sub.server = server
        yield sub
