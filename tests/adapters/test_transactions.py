"""The ``transactions`` adapter (seed 003) through a real worker, sent by name, against
the fake transaction system that verifies the OAuth2 token and the HMAC over the exact
bytes received: every operation, the seed's retry table, commits that never run twice,
and the supervisor alert of a dead-lettered draft or commit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.calls import probe
from hub.platform.models import CacheEntry, DeadLetter, WebhookEvent
from tests.adapters.conftest import BY_NAME, Caller, register
from tests.adapters.fake_base import Fault
from tests.adapters.fake_transactions import (
    FakeTransactions,
    fake_transactions,
    rate_limited,
)
from tests.cli.conftest import Hub
from tests.hub.inbox import wait_for
from tests.webhooks_web.conftest import close_app


@pytest.fixture
def bank() -> Iterator[FakeTransactions]:
    with fake_transactions() as fake:
        yield fake


def _credentials(bank: FakeTransactions) -> dict[str, str]:
    return {"client_id": bank.client_id, "client_secret": bank.client_secret,
            "hmac_secret": bank.hmac_secret}


@pytest.fixture
def payments(worker, client_app, tenant, bank) -> Caller:  # type: ignore[no-untyped-def]
    """The README's registration: OAuth2 client credentials, HMAC signing by default."""
    return register(client_app, tenant, "payments", "transactions", bank.url,
                    "oauth2_client_credentials", _credentials(bank))


def _draft(payments: Caller, amount: float = 500.0) -> str:
    envelope = payments("create_draft_transaction", {
        "customer_id": "cust-1", "amount": amount, "description": "Annual plan"})
    return str(envelope["data"]["draft_id"])


def test_transaction_updated_webhook_drops_the_cached_status(payments, bank, settings,
                                                            sessions, tenant):
    """Seed 003's cache invalidation end to end: the provider's webhook comes in through
    the real Flask app, a worker processes it, the cached status is gone, and the next
    status call reaches the provider."""
    from webhooks_web import create_app

    code, endpoint = Hub().json(
        "webhooks", "add", "--tenant", tenant, "--source", "payments", "--scheme",
        "hmac-sha256", "--header", "X-HMAC-Signature", "--secret-stdin", "--id-path", "id",
        "--type-path", "type", input=bank.webhook_secret)
    assert code == 0
    bank.add_transaction("TXN-W", status="pending")
    assert payments("get_transaction_status", {"transaction_id": "TXN-W"})["data"][
        "status"] == "pending"
    assert payments("get_transaction_status", {"transaction_id": "TXN-W"})["cached"] is True

    bank.set_status("TXN-W", "completed")
    body, headers = bank.webhook("TXN-W")
    app = create_app(settings)  # the session worker's broker: it processes the event
    try:
        answer = app.test_client().post(
            f"/api/v1/webhooks/payments/{endpoint['token']}", data=body, headers=headers)
    finally:
        close_app(app)
    assert answer.status_code == 202

    def processed() -> bool:
        with sessions() as session:
            row = session.get(WebhookEvent, uuid.UUID(answer.json["id"]))
            return row is not None and row.status == "processed"

    wait_for(processed)
    fresh = payments("get_transaction_status", {"transaction_id": "TXN-W"})
    assert fresh["cached"] is False and fresh["data"]["status"] == "completed"
    assert bank.hits("/transactions/TXN-W") == 2


@BY_NAME
def test_get_transaction_status_is_cached_two_minutes(payments, bank, by, sessions, tenant):
    bank.add_transaction("TXN-1", status="pending")
    first = payments("get_transaction_status", {"transaction_id": "TXN-1"}, by=by)
    assert first["data"] == {"transaction_id": "TXN-1", "status": "pending", "amount": 500.0,
                             "currency": "USD", "created_at": bank.transactions["TXN-1"][
                                 "created_at"], "completed_at": None}
    bank.set_status("TXN-1", "completed")
    again = payments("get_transaction_status", {"transaction_id": "TXN-1"}, by=by)
    assert again["cached"] is True and again["data"]["status"] == "pending"
    assert bank.hits("/transactions/TXN-1") == 1
    with sessions() as session:
        expires_at = session.scalars(select(CacheEntry.expires_at).where(
            CacheEntry.tenant_id == tenant)).one()
    assert 110 <= (expires_at - datetime.now(UTC)).total_seconds() <= 120


@BY_NAME
def test_history_follows_the_providers_pages_up_to_the_limit(payments, bank, by):
    bank.add_history("cust-9", 250)
    envelope = payments("get_transaction_history", {"customer_id": "cust-9", "limit": 230},
                        by=by)
    data = envelope["data"]
    assert len(data["transactions"]) == 230 and data["pages"] == 3
    assert data["transactions"][0] == {
        "transaction_id": "TXN-cust-9-0000", "amount": 0.0, "currency": "USD",
        "status": "completed", "created_at": bank.history["cust-9"][0]["created_at"]}
    assert [t["transaction_id"] for t in data["transactions"]] == \
        [t["id"] for t in bank.history["cust-9"][:230]]
    assert data["next_cursor"] == "230"  # the provider has more than the caller wanted
    seen = [s.query for s in bank.server.seen if s.path.endswith("/transactions")]
    assert seen == [{"limit": "100"}, {"limit": "100", "cursor": "100"},
                    {"limit": "30", "cursor": "200"}]
    rest = payments("get_transaction_history", {"customer_id": "cust-9", "limit": 100,
                                                "cursor": data["next_cursor"]}, by=by)
    assert len(rest["data"]["transactions"]) == 20 and rest["data"]["next_cursor"] is None


def test_history_default_is_one_page_of_ten(payments, bank):
    bank.add_history("cust-3", 25)
    data = payments("get_transaction_history", {"customer_id": "cust-3"})["data"]
    assert len(data["transactions"]) == 10 and data["pages"] == 1


@BY_NAME
def test_create_draft_transaction_is_signed_and_authenticated(payments, bank, by):
    envelope = payments("create_draft_transaction", {
        "customer_id": "cust-1", "amount": 99.5, "description": "Top-up",
        "metadata": {"conversation": "c-77"}}, by=by)
    draft_id = envelope["data"]["draft_id"]
    assert envelope["status_code"] == 201 and envelope["data"] == {
        "draft_id": draft_id, "status": "pending_confirmation", "amount": 99.5,
        "expires_at": bank.drafts[draft_id]["expires_at"]}
    assert bank.drafts[draft_id]["metadata"] == {"conversation": "c-77"}
    assert bank.signatures_checked == 1 and bank.token_requests == 1


@BY_NAME
def test_commit_transaction_runs_once_per_idempotency_key(payments, bank, by):
    draft_id = _draft(payments)
    first = payments("commit_transaction", {"draft_id": draft_id}, by=by,
                     idempotency_key=f"commit-{draft_id}")
    assert first["data"]["status"] == "completed" and first["data"]["amount"] == 500.0
    again = payments("commit_transaction", {"draft_id": draft_id}, by=by,
                     idempotency_key=f"commit-{draft_id}")
    assert again == first  # the stored result; the provider was not called again
    assert bank.hits(f"/transactions/drafts/{draft_id}/commit") == 1
    assert bank.commits_made == 1


@BY_NAME
def test_commit_without_an_idempotency_key_is_refused(payments, bank, by):
    draft_id = _draft(payments)
    error = payments.error("commit_transaction", {"draft_id": draft_id}, by=by)
    assert error["code"] == "VALIDATION_ERROR" and "idempotency_key" in error["message"]
    assert bank.hits(f"/transactions/drafts/{draft_id}/commit") == 0


def test_a_commit_whose_answer_was_lost_is_not_committed_twice(payments, bank):
    """The provider commits but answers too late; the retry carries the same
    Idempotency-Key, which the provider honours: one commit, one transaction."""
    draft_id = _draft(payments)
    bank.fail_next(f"/transactions/drafts/{draft_id}/commit", Fault(0, delay=1.5))
    envelope = payments("commit_transaction", {"draft_id": draft_id}, timeout=0.5,
                        idempotency_key=f"commit-{draft_id}")
    assert bank.commits_made == 1
    assert envelope["data"]["transaction_id"] in bank.transactions


def test_a_keyed_draft_whose_answer_was_lost_is_outcome_unknown_and_alerts(payments, bank,
                                                                         events):
    """The provider does not de-duplicate drafts: a lost answer is not re-sent, it is
    an OUTCOME_UNKNOWN dead letter and the supervisor hears of it."""
    bank.fail_next("/transactions/drafts", Fault(0, delay=1.5))
    error = payments.error("create_draft_transaction", {
        "customer_id": "cust-8", "amount": 40.0, "description": "Gift card"},
        idempotency_key="draft-cust-8-1", timeout=0.5)
    assert error["code"] == "OUTCOME_UNKNOWN"
    alert = events.wait("supervisor.alert")["data"]
    assert (alert["operation"], alert["error_code"]) == ("create_draft_transaction",
                                                         "OUTCOME_UNKNOWN")
    wait_for(lambda: bank.drafts)  # the provider made it, answering too late
    assert bank.hits("/transactions/drafts") == 1 and len(bank.drafts) == 1


@BY_NAME
def test_cancel_draft(payments, bank, by):
    draft_id = _draft(payments)
    envelope = payments("cancel_draft", {"draft_id": draft_id}, by=by)
    assert envelope["data"] == {"draft_id": draft_id, "status": "cancelled"}
    assert bank.drafts[draft_id]["status"] == "cancelled"


def test_a_401_re_authenticates_once_and_succeeds(payments, bank):
    bank.add_transaction("TXN-2")
    payments("get_transaction_status", {"transaction_id": "TXN-2"}, cache=False)
    bank.revoke_tokens()
    envelope = payments("get_transaction_status", {"transaction_id": "TXN-2"}, cache=False)
    assert envelope["ok"] and bank.token_requests == 2
    assert bank.hits("/transactions/TXN-2") == 3  # ok, 401, ok after a new token


def test_a_wrong_hmac_secret_is_refused_and_not_retried(worker, client_app, tenant, bank):
    bad = register(client_app, tenant, "payments-bad", "transactions", bank.url,
                   "oauth2_client_credentials",
                   {**_credentials(bank), "hmac_secret": "hs_not_the_one"})
    error = bad.error("create_draft_transaction",
                      {"customer_id": "c", "amount": 5, "description": "d"})
    assert error["code"] == "AUTH_ERROR" and error["details"]["status_code"] == 403
    assert "invalid_signature" in error["details"]["body"]
    assert bank.hits("/transactions/drafts") == 1 and not bank.drafts


def test_seed_retry_table(payments, bank):
    """Timeouts, 5xx and 429 are retried (429 not before its Retry-After); other 4xx not."""
    params = {"customer_id": "c", "amount": 5, "description": "d"}
    bank.fail_next("/transactions/drafts", Fault(502), rate_limited(retry_after=1))
    started = time.monotonic()
    envelope = payments("create_draft_transaction", params)
    assert envelope["attempts"] == 3 and time.monotonic() - started >= 1.0
    assert bank.hits("/transactions/drafts") == 3 and len(bank.drafts) == 1

    bank.fail_next("/transactions/drafts", Fault(400, {"error": {
        "code": "invalid_amount", "message": "amount exceeds the customer's limit"}}))
    error = payments.error("create_draft_transaction", params)
    assert error["code"] == "UPSTREAM_ERROR" and "invalid_amount" in error["details"]["body"]
    assert bank.hits("/transactions/drafts") == 4

    bank.add_transaction("TXN-T")
    bank.fail_next("/transactions/TXN-T", Fault(0, delay=1.5))
    slow = payments("get_transaction_status", {"transaction_id": "TXN-T"}, timeout=0.5)
    assert slow["ok"] and slow["attempts"] == 2


@pytest.mark.parametrize("operation", ["create_draft_transaction", "commit_transaction"])
def test_a_dead_lettered_draft_or_commit_alerts_the_supervisor(payments, bank, events,
                                                               sessions, tenant, operation):
    draft_id = _draft(payments)
    params, options, path = {"customer_id": "cust-5", "amount": 12.5,
                             "description": "d"}, {}, "/transactions/drafts"
    if operation == "commit_transaction":
        params, options = {"draft_id": draft_id}, {"idempotency_key": f"k-{draft_id}"}
        path = f"/transactions/drafts/{draft_id}/commit"
    bank.fail_next(path, Fault(503), Fault(503), Fault(503))
    error = payments.error(operation, params, **options)
    assert error["code"] == "DEAD_LETTERED"
    alert = events.wait("supervisor.alert")["data"]
    assert alert["operation"] == operation and alert["error_code"] == "UPSTREAM_ERROR"
    assert alert["integration"] == "payments" and alert["attempts"] == 3
    assert alert["ids"] == ({"draft_id": draft_id} if operation == "commit_transaction"
                            else {"customer_id": "cust-5"})
    with sessions() as session:
        letter = session.get(DeadLetter, alert["dead_letter_id"])
    assert letter is not None and letter.tenant_id == tenant
    assert letter.kwargs["params"] == params
    assert bank.client_secret not in str(alert) and bank.hmac_secret not in str(alert)


def test_health_check_reaches_the_provider_authenticated(payments, bank, services, tenant):
    assert probe.probe(services, tenant, "payments")["ok"] is True
    assert bank.hits("/health") == 1 and bank.token_requests == 1
