"""A fake of seed 003's transaction system (``/api/v1``) on a local port, strict about auth.

- ``POST /oauth/token``: client credentials (RFC 6749 §4.4; client_id/client_secret
  in the form, as the seed sends them, or HTTP Basic) -> ``{"access_token",
  "token_type": "Bearer", "expires_in"}``; bad client -> 401 ``{"error": "invalid_client"}``.
- Every other request needs ``Authorization: Bearer <issued token>`` (401
  ``invalid_token`` with ``WWW-Authenticate`` otherwise) and, when it has a body or is
  a POST, ``X-HMAC-Signature`` = hex HMAC-SHA256 of the exact bytes received (403
  ``invalid_signature`` otherwise).
- Transactions, customers' paginated history (``limit`` <= 100, ``cursor``), drafts,
  commits (``Idempotency-Key`` required; a repeated key replays the stored answer, a
  second commit of a draft is 409) and cancels, with JSON errors
  ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from tests.adapters.fake_base import Fake, Fault, json_answer, serving

PREFIX = "/api/v1"
MAX_PAGE = 100


def _stamp(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return json_answer(status, {"error": {"code": code, "message": message}}, headers)


@dataclass
class FakeTransactions(Fake):
    prefix: ClassVar[str] = PREFIX
    client_id: str = "max-hub"
    client_secret: str = field(default_factory=lambda: "cs_" + secrets.token_hex(16))
    hmac_secret: str = field(default_factory=lambda: "hs_" + secrets.token_hex(16))
    #: What the provider signs its own webhooks with (X-HMAC-Signature, hex).
    webhook_secret: str = field(default_factory=lambda: "whs_" + secrets.token_hex(16))
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    drafts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Idempotency-Key -> (status, body) of the commit it made.
    commits: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    commits_made: int = 0
    signatures_checked: int = 0
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, path: str, *faults: Fault) -> None:
        """The next answers on ``path`` (after auth is checked)."""
        with self.lock:
            self.faults.setdefault(PREFIX + path, deque()).extend(faults)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def add_transaction(self, transaction_id: str, status: str = "pending",
                        amount: float = 500.0) -> None:
        with self.lock:
            self.transactions[transaction_id] = {
                "id": transaction_id, "status": status, "amount": amount, "currency": "USD",
                "created_at": _stamp(), "completed_at": None}

    def set_status(self, transaction_id: str, status: str) -> None:
        with self.lock:
            self.transactions[transaction_id].update(status=status, completed_at=_stamp())

    def add_history(self, customer_id: str, count: int) -> None:
        with self.lock:
            self.history[customer_id] = [
                {"id": f"TXN-{customer_id}-{n:04d}", "amount": float(n), "currency": "USD",
                 "status": "completed", "created_at": _stamp(-timedelta(minutes=n))}
                for n in range(count)]

    def webhook(self, transaction_id: str) -> tuple[bytes, dict[str, str]]:
        """The ``transaction_updated`` webhook the provider posts when a status changes."""
        with self.lock:
            transaction = dict(self.transactions[transaction_id])
        body = json.dumps({"id": "evt_" + secrets.token_hex(8), "type": "transaction_updated",
                           "created_at": _stamp(),
                           "data": {"transaction_id": transaction_id,
                                    "status": transaction["status"]}}).encode()
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-HMAC-Signature": signature}

    # --- the wire ---------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == PREFIX + "/oauth/token":
            return self._token(request)
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        with self.lock:
            queue = self.faults.get(request.path)
            fault = queue.popleft() if queue else None
        if fault is not None:
            time.sleep(fault.delay)  # the provider being slow is what is simulated
            if fault.status:
                return json_answer(fault.status, fault.body or {"error": {
                    "code": "unavailable", "message": "try again later"}}, fault.headers)
        with self.lock:
            return self._route(request, request.path.removeprefix(PREFIX).strip("/").split("/"))

    def _token(self, request: Request) -> Response:
        form = request.form
        basic = request.authorization
        client = (form.get("client_id"), form.get("client_secret"))
        if basic is not None:
            client = (basic.username, basic.password)
        if form.get("grant_type") != "client_credentials":
            return json_answer(400, {"error": "unsupported_grant_type"})
        if client != (self.client_id, self.client_secret):
            return json_answer(401, {"error": "invalid_client"})
        token = "at_" + secrets.token_hex(16)
        with self.lock:
            self.tokens.add(token)
            self.token_requests += 1
        return json_answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600},
                     {"Cache-Control": "no-store"})

    def _authenticate(self, request: Request) -> Response | None:
        auth = request.headers.get("Authorization", "")
        with self.lock:
            known = auth.startswith("Bearer ") and auth[7:] in self.tokens
        if not known:
            return _error(401, "invalid_token", "The access token is invalid or expired",
                          **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
        body = request.get_data()
        signature = request.headers.get("X-HMAC-Signature")
        if body or request.method == "POST" or signature is not None:
            expected = hmac.new(self.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, signature or ""):
                return _error(403, "invalid_signature",
                              "X-HMAC-Signature does not match the request body")
            with self.lock:
                self.signatures_checked += 1
        return None

    def _route(self, request: Request, path: list[str]) -> Response:
        body = json.loads(request.get_data() or b"null")
        if path == ["health"]:
            return json_answer(200, {"status": "ok"})
        if len(path) == 2 and path[0] == "transactions" and request.method == "GET":
            found = self.transactions.get(path[1])
            return json_answer(200, found) if found else _error(404, "not_found",
                                                          "No such transaction")
        if len(path) == 3 and path[0] == "customers" and path[2] == "transactions":
            return self._history(path[1], request)
        if path == ["transactions", "drafts"] and request.method == "POST":
            return self._create_draft(body)
        if len(path) == 4 and path[:2] == ["transactions", "drafts"]:
            return self._draft_action(path[2], path[3], request, body)
        return _error(404, "not_found", "No such endpoint")

    def _history(self, customer_id: str, request: Request) -> Response:
        try:
            limit = int(request.args.get("limit", "10"))
            start = int(request.args.get("cursor", "0"))
        except ValueError:
            return _error(400, "invalid_request", "limit and cursor must be numbers")
        if not 1 <= limit <= MAX_PAGE:
            return _error(400, "invalid_limit", f"limit must be between 1 and {MAX_PAGE}")
        rows = self.history.get(customer_id, [])
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        return json_answer(200, {"transactions": page, "has_more": more,
                           "next_cursor": str(start + limit) if more else None})

    def _create_draft(self, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("customer_id"):
            return _error(400, "invalid_request", "customer_id is required")
        if not isinstance(body.get("amount"), (int, float)) or body["amount"] <= 0:
            return _error(400, "invalid_amount", "amount must be a positive number")
        draft = {"id": "DRAFT-" + secrets.token_hex(4), "status": "pending_confirmation",
                 "amount": body["amount"], "customer_id": body["customer_id"],
                 "description": body.get("description"), "metadata": body.get("metadata"),
                 "expires_at": _stamp(timedelta(minutes=30))}
        self.drafts[draft["id"]] = draft
        return json_answer(201, draft)

    def _draft_action(self, draft_id: str, action: str, request: Request,
                      body: Any) -> Response:
        draft = self.drafts.get(draft_id)
        if draft is None:
            return _error(404, "not_found", "No such draft")
        if action == "commit":
            return self._commit(draft, request.headers.get("Idempotency-Key"), body)
        if action == "cancel":
            if draft["status"] == "committed":
                return _error(409, "draft_committed", "A committed draft cannot be cancelled")
            draft["status"] = "cancelled"
            return json_answer(200, {"id": draft_id, "status": "cancelled"})
        return _error(404, "not_found", "No such endpoint")

    def _commit(self, draft: dict[str, Any], key: str | None, body: Any) -> Response:
        if not key:
            return _error(400, "idempotency_key_required", "Idempotency-Key header required")
        if key in self.commits:  # Stripe-style replay of the first answer
            status, stored = self.commits[key]
            return json_answer(status, stored, {"Idempotent-Replayed": "true"})
        if body != {"draft_id": draft["id"]}:
            return _error(400, "invalid_request", "body must name the draft committed")
        if draft["status"] != "pending_confirmation":
            return _error(409, "draft_not_pending", f"draft is {draft['status']}")
        draft["status"] = "committed"
        self.commits_made += 1
        transaction = {"id": "TXN-" + secrets.token_hex(4), "status": "completed",
                       "amount": draft["amount"], "currency": "USD",
                       "created_at": _stamp(), "completed_at": _stamp()}
        self.transactions[transaction["id"]] = transaction
        self.commits[key] = (200, transaction)
        return json_answer(200, transaction)


def rate_limited(retry_after: int = 1) -> Fault:
    return Fault(429, {"error": {"code": "rate_limited", "message": "Too many requests"}},
                 {"Retry-After": str(retry_after)})


def fake_transactions() -> AbstractContextManager[FakeTransactions]:
    return serving(FakeTransactions())
