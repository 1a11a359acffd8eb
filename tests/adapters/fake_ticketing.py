"""A fake of seed 003's ticketing system (Zendesk-like REST, ``/api/v2``) on a local port.

Auth: ``X-Api-Key: <api_key>`` or ``Authorization: Bearer <token>``; otherwise 401
``{"error": "Couldn't authenticate you"}``. ``POST /tickets`` answers 201 with the
ticket, ``GET /tickets/{id}`` the ticket or 404 ``{"error": "RecordNotFound"}``,
``POST /tickets/{id}/comments`` 201 with the comment; a missing field is 422
``{"error": "RecordInvalid", "details": {...}}``. Tests queue faults (5xx, 429 with
``Retry-After``, a slow answer) with :meth:`FakeTicketing.fail_next`.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from tests.adapters.fake_base import Fake, Fault, json_answer, serving

PREFIX = "/api/v2"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeTicketing(Fake):
    prefix: ClassVar[str] = PREFIX
    api_key: str = field(default_factory=lambda: "tk_" + secrets.token_hex(16))
    bearer: str = field(default_factory=lambda: "tb_" + secrets.token_hex(16))
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(101))

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def assign(self, ticket_id: str, email: str, status: str = "in_progress") -> None:
        """What an agent does in the ticketing system's own UI."""
        with self.lock:
            self.tickets[ticket_id].update(assignee={"id": 7, "email": email}, status=status,
                                           updated_at=_now())

    # --- the wire ---------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if not self._authorised(request):
            return json_answer(401, {"error": "Couldn't authenticate you"},
                         {"WWW-Authenticate": 'Bearer realm="tickets"'})
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            time.sleep(fault.delay)  # the provider being slow is what is simulated
            if fault.status:
                return json_answer(fault.status, fault.body or {"error": "ServiceUnavailable"},
                             fault.headers)
        path = request.path.removeprefix(PREFIX).strip("/").split("/")
        with self.lock:
            return self._route(request, path)

    def _authorised(self, request: Request) -> bool:
        return (request.headers.get("X-Api-Key") == self.api_key
                or request.headers.get("Authorization") == f"Bearer {self.bearer}")

    def _route(self, request: Request, path: list[str]) -> Response:
        if path == ["tickets"] and request.method == "POST":
            return self._create(request.get_json(silent=True) or {})
        if path == ["tickets"] and request.method == "GET":
            return json_answer(200, {"tickets": list(self.tickets.values())[:1]})
        if len(path) >= 2 and path[0] == "tickets" and path[1] not in self.tickets:
            return json_answer(404, {"error": "RecordNotFound", "description": "Not found"})
        if len(path) == 2 and request.method == "GET":
            return json_answer(200, self.tickets[path[1]])
        if len(path) == 3 and path[2] == "comments" and request.method == "POST":
            return self._comment(path[1], request.get_json(silent=True) or {})
        return json_answer(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def _create(self, body: dict[str, Any]) -> Response:
        missing = [f for f in ("subject", "description") if not body.get(f)]
        if missing:
            return _invalid(missing)
        number = next(self.ids)
        ticket = {"id": f"TICKET-{number}", "url": f"{self.url}/tickets/{number}",
                  "status": "open", "subject": body["subject"],
                  "description": body["description"],
                  "priority": body.get("priority", "normal"),
                  "custom_fields": body.get("custom_fields", {}), "assignee": None,
                  "created_at": _now(), "updated_at": _now()}
        self.tickets[ticket["id"]] = ticket
        return json_answer(201, ticket, {"Location": ticket["url"]})

    def _comment(self, ticket_id: str, body: dict[str, Any]) -> Response:
        if not body.get("body"):
            return _invalid(["body"])
        comment = {"id": next(self.ids), "body": body["body"],
                   "public": bool(body.get("public", True)), "created_at": _now()}
        self.comments.setdefault(ticket_id, []).append(comment)
        return json_answer(201, comment)


def _invalid(fields: list[str]) -> Response:
    return json_answer(422, {"error": "RecordInvalid", "description": "Record validation errors",
                       "details": {f: [{"description": f"{f.capitalize()}: cannot be blank"}]
                                   for f in fields}})


def rate_limited(retry_after: int = 1) -> Fault:
    return Fault(429, {"error": "TooManyRequests",
                       "description": "Rate limit for tickets exceeded"},
                 {"Retry-After": str(retry_after), "X-Rate-Limit": "700",
                  "X-Rate-Limit-Remaining": "0"})


def fake_ticketing() -> AbstractContextManager[FakeTicketing]:
    return serving(FakeTicketing())
