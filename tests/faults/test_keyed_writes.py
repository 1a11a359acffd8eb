"""A write with an idempotency key whose worker is killed -9 mid-request (issue 9 item 2):
the redelivered task never sends it again blindly. It ends OUTCOME_UNKNOWN in the
dead-letter table, or, where the provider de-duplicates on the Idempotency-Key header,
it is sent again with the same key and the provider does it once."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from hub.ops import dlq
from hub.platform.models import DeadLetter, IntegrationLog
from tests.calls.conftest import make_integration, provider  # noqa: F401 - fixtures
from tests.calls.processes import worker_process
from tests.hub.fake_http import serve

pytestmark = pytest.mark.slow
TIMEOUT = 60


class Payments:
    """POST /v1/charges as Stripe answers it: the first request with an Idempotency-Key
    makes the charge, a repeat gets the first one's answer (``Idempotent-Replayed:
    true``), waiting while the first is still being processed. ``dedup=False`` is a
    provider without that support: every request makes a charge. The first request
    is held until the test releases it."""

    def __init__(self, *, dedup: bool) -> None:
        self.dedup = dedup
        self.charges: list[str | None] = []
        self.keys: list[str | None] = []
        self.arrived, self.release = threading.Event(), threading.Event()
        self.answered: dict[str | None, threading.Event] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            self.keys.append(key)
            repeat = self.dedup and key in self.answered
            if not repeat:
                self.charges.append(key)
                self.answered[key] = threading.Event()
        if repeat:
            self.answered[key].wait(TIMEOUT)
        elif len(self.charges) == 1:
            self.arrived.set()
            self.release.wait(TIMEOUT)  # the provider is slow while the worker is killed
        self.answered[key].set()
        body = {"id": "ch_1", "object": "charge", "amount": 500}
        headers = {"Idempotent-Replayed": "true"} if repeat else {}
        return Response(json.dumps(body), headers=headers, content_type="application/json")


def _pool_children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a prefork worker's pool), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _kill_mid_request(client_app, settings, tenant: str, payments: Payments,  # type: ignore[no-untyped-def]
                      name: str):
    """Send a keyed charge to a prefork worker, kill -9 its pool child while the
    provider holds the POST, and return the call's AsyncResult once redelivered."""
    queue = settings.queue(f"keyed-{uuid.uuid4().hex[:6]}")
    with worker_process(client_app, [queue], app="tasks") as worker:
        result = client_app.send_task("hub.call", queue=queue, kwargs={
            "tenant": tenant, "integration": name, "operation": "post",
            "params": {"path": "/v1/charges", "json": {"amount": 500}},
            "idempotency_key": "order-42"})
        assert payments.arrived.wait(TIMEOUT), worker.log_path.read_text()[-3000:]
        [child] = _pool_children(worker.pid)
        os.kill(child, signal.SIGKILL)
        payments.release.set()  # the provider finishes the write its caller never hears of
        # The pool replaces the child; the message is rejected back to the queue and
        # delivered again under the same task id (task_reject_on_worker_lost).
        outcome = result.get(timeout=TIMEOUT, propagate=False)
        log = worker.log_path.read_text()
    return result, outcome, log


def _audit(sessions, task_id: str) -> list[tuple[str, str | None]]:
    with sessions() as s:
        return [(r.outcome, r.method) for r in s.scalars(
            select(IntegrationLog).where(IntegrationLog.task_id == task_id)
            .order_by(IntegrationLog.started_at))]


def test_a_killed_worker_never_sends_a_keyed_write_again(client_app, settings, sessions,
                                                         tenant, make_integration):  # noqa: F811
    payments = Payments(dedup=False)
    with serve(payments) as server:
        make_integration("payments", auth_type="none", base_url=server.url)
        result, outcome, log = _kill_mid_request(client_app, settings, tenant, payments,
                                                 "payments")

    assert result.state == "FAILURE", log[-3000:]
    error = outcome.args[0]["error"]
    assert error["code"] == "OUTCOME_UNKNOWN", error
    assert payments.charges == ["order-42"]  # the provider got the write once
    # Every request that may have reached the provider is in the trail: the first one,
    # committed as `sending` before it left, now says its answer was lost.
    assert _audit(sessions, result.id) == [("outcome_unknown", "POST")]
    with sessions() as s:
        [letter] = s.scalars(select(DeadLetter).where(DeadLetter.tenant_id == tenant)).all()
        shown = dlq.describe_full(s, letter)
    assert (letter.error_code, letter.task_id) == ("OUTCOME_UNKNOWN", result.id)
    assert letter.kwargs["idempotency_key"] == "order-42"
    sent = shown["sent"]  # `hub dlq show`: what was sent, and when
    assert sent["method"] == "POST" and sent["url"] == server.url + "/v1/charges"
    assert sent["at"] is not None and "POST" in letter.error


def test_a_killed_worker_sends_again_what_the_provider_dedups(client_app, settings, sessions,
                                                              tenant, make_integration):  # noqa: F811
    payments = Payments(dedup=True)
    with serve(payments) as server:
        make_integration("payments", auth_type="none", base_url=server.url,
                         config={"provider_dedup": True})
        result, outcome, log = _kill_mid_request(client_app, settings, tenant, payments,
                                                 "payments")

    assert result.state == "SUCCESS", log[-3000:]
    assert outcome["ok"] and outcome["data"]["id"] == "ch_1" and outcome["attempts"] == 2
    assert payments.keys == ["order-42", "order-42"]  # sent twice, with its key
    assert payments.charges == ["order-42"]  # done once
    assert _audit(sessions, result.id) == [("outcome_unknown", "POST"), ("success", "POST")]
