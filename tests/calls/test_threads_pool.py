"""Calls under the threads pool: many in flight in one process, sharing its objects.

Issue 10: a worker runs HUB_WORKER_CONCURRENCY tasks at once in threads; the
breaker, the HTTP sessions, the OAuth2 token, the resolved integration and the
result writer are per process, so they must let calls overlap and stay correct.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from celery import states
from sqlalchemy import text

from celeryresults import HubDatabaseBackend
from hub.calls import integrations
from hub.calls.breaker import breaker_for
from hub.calls.pipeline import CallRequest, execute_call
from tests.calls.fake_provider import Reply

TIMEOUT = 60


def test_one_breaker_per_integration_lets_calls_overlap(services, make_integration):
    row = make_integration()
    breaker = breaker_for(services, row)
    assert breaker_for(services, row) is breaker
    # Eight calls that each wait for the other seven: a breaker holding a lock for
    # the length of a call (pybreaker's CircuitBreaker.call does) breaks the barrier.
    barrier = threading.Barrier(8, timeout=10)
    with ThreadPoolExecutor(8) as pool:
        arrived = list(pool.map(lambda _: breaker.call(barrier.wait), range(8)))
    assert sorted(arrived) == list(range(8))
    assert breaker.state == "closed"


def test_concurrent_calls_on_the_worker_overlap_and_fetch_one_token(
        worker, client_app, tenant, provider, make_integration):
    make_integration("crm", auth_type="oauth2_client_credentials", credentials={
        "client_id": provider.client_id, "client_secret": provider.client_secret})
    provider.script("/v1/slow", *[Reply(200, {"ok": True}, delay=0.5) for _ in range(8)])
    results = [client_app.send_task("hub.call", kwargs={
        "tenant": tenant, "integration": "crm", "operation": "post",
        "params": {"path": "/v1/slow"}}) for _ in range(8)]
    envelopes = [r.get(timeout=TIMEOUT) for r in results]
    assert all(e["ok"] and e["data"] == {"ok": True} for e in envelopes)
    assert provider.token_requests == 1  # the single flight held across threads
    assert provider.max_in_flight >= 4  # calls overlapped, not one at a time


def test_a_change_to_an_integration_applies_to_the_next_call(services, sessions, tenant,
                                                             make_integration):
    make_integration("crm")
    first = integrations.resolve_active(services, tenant, "crm")
    assert integrations.resolve_active(services, tenant, "crm") is first  # served from memory
    call = CallRequest(tenant, "crm", "post", {"path": "/v1/x"})
    assert execute_call(services, call).status == "success"
    with sessions() as session, session.begin():
        integrations.set_status(session, tenant, "crm", "disabled")
    outcome = execute_call(services, call)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "INTEGRATION_DISABLED"


def test_results_written_together_are_read_by_a_plain_client(celery_app, client_app):
    backend = celery_app.backend
    assert isinstance(backend, HubDatabaseBackend)
    # One writer (one pool, one batch queue) for every thread, not one per thread.
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: id(celery_app.backend), range(8))) == {id(backend)}
    ids = [str(uuid.uuid4()) for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: backend.store_result(ids[n], {"n": n}, states.SUCCESS),
                      range(16)))
    assert [client_app.AsyncResult(i).get(timeout=TIMEOUT) for i in ids] == [
        {"n": n} for n in range(16)]
    # As with Celery's own backend, a stored SUCCESS is never overwritten.
    backend.store_result(ids[0], ValueError("late"), states.FAILURE)
    assert client_app.AsyncResult(ids[0]).get(timeout=TIMEOUT) == {"n": 0}


def test_the_result_writer_is_bounded_like_the_hubs_pool(celery_app):
    # A result write stuck behind a lock or a hung server fails within the bound (and is
    # then handled as PostgreSQL unavailable) instead of holding its thread for ever.
    with celery_app.backend._writer().engine.connect() as conn:
        shown = [conn.execute(text(f"SHOW {name}")).scalar_one()
                 for name in ("statement_timeout", "lock_timeout")]
    assert shown == ["30s", "10s"]
