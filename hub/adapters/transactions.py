"""MAX transactions (seed 003 §2-3): transaction status, history, drafts and commits.

Under the integration's base URL (e.g. ``https://transactions.example.com/api/v1``):

============================  ==========================================  ==============
operation                     request                                     note
============================  ==========================================  ==============
``get_transaction_status``    ``GET /transactions/{transaction_id}``      cached 2 min
``get_transaction_history``   ``GET /customers/{customer_id}/transactions  pages followed
                              ?limit=&cursor=``                           up to ``limit``
``create_draft_transaction``  ``POST /transactions/drafts``               alert if dead
``commit_transaction``        ``POST /transactions/drafts/{draft_id}/     idempotency key
                              commit``                                    required; alert
``cancel_draft``              ``POST /transactions/drafts/{draft_id}/
                              cancel``
============================  ==========================================  ==============

Auth is seed 003's ``oauth2_hmac``: OAuth2 client credentials (bearer token from
``/oauth/token``) plus ``X-HMAC-Signature``, the hex HMAC-SHA256 of the exact body
bytes sent. :attr:`TransactionsAdapter.auth_defaults` turns the signing on, so an
integration registered with ``--auth-type oauth2_client_credentials`` (or the seed's
``oauth2_hmac``, an alias of it: :data:`hub.calls.integrations.AUTH_TYPE_ALIASES`) signs every
request; the credentials are ``client_id``, ``client_secret`` and ``hmac_secret``.

A commit must never run twice: it is refused without an idempotency key, which the
hub sends as ``Idempotency-Key`` and under which it stores the result (a repeat
returns the stored result without calling the provider); the provider de-duplicates
on that header, so a commit whose answer was lost is sent again with the same key
(``provider_dedup``). A draft created with a key whose answer was lost is not sent
again (OUTCOME_UNKNOWN). A draft or commit that is dead-lettered (retries exhausted,
or its outcome unknown) publishes ``integration.supervisor.alert``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hub.adapters.base import Adapter, Operation, Pagination
from hub.adapters.transform import closed_object

#: Seed 003: "@cached(ttl=120)" on get_transaction_status.
STATUS_CACHE_SECONDS = 120
HISTORY_PAGE_SIZE = 100

_ID = {"type": "string", "minLength": 1, "maxLength": 128}



class TransactionsAdapter(Adapter):
    name = "transactions"
    health_path = "/health"
    #: Seed 003's ``oauth2_hmac``: the body is signed on top of the bearer token, and
    #: the token request carries client_id/client_secret in its form.
    auth_defaults: ClassVar[Mapping[str, Any]] = {
        "client_auth": "body", "hmac": {"header": "X-HMAC-Signature"}}
    operations = (
        Operation(
            "get_transaction_status", method="GET", path="/transactions/{transaction_id}",
            params_schema=closed_object({"transaction_id": _ID}, ["transaction_id"]),
            cacheable=True, cache_ttl=STATUS_CACHE_SECONDS,
            response_map="{transaction_id: id, status: status, amount: amount, "
                         "currency: currency, created_at: created_at, "
                         "completed_at: completed_at}",
            description="A transaction's status (cached 2 minutes; a transaction_updated "
                        "webhook drops it)."),
        Operation(
            "get_transaction_history", method="GET",
            path="/customers/{customer_id}/transactions",
            params_schema=closed_object({
                "customer_id": _ID,
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "cursor": {"type": "string", "minLength": 1, "maxLength": 512},
            }, ["customer_id"]),
            pagination=Pagination(items="transactions", cursor="next_cursor",
                                  max_page_size=HISTORY_PAGE_SIZE),
            response_map="{transactions: items[].{transaction_id: id, amount: amount, "
                         "currency: currency, status: status, created_at: created_at}, "
                         "next_cursor: next_cursor, pages: pages}",
            description="A customer's transactions, newest first, following the "
                        "provider's pages up to `limit` (default 10)."),
        Operation(
            "create_draft_transaction", method="POST", path="/transactions/drafts",
            params_schema=closed_object({
                "customer_id": _ID,
                "amount": {"type": "number", "exclusiveMinimum": 0},
                "description": {"type": "string", "minLength": 1, "maxLength": 1000},
                "metadata": {"type": "object"},
            }, ["customer_id", "amount", "description"]),
            request_map="{customer_id: customer_id, amount: amount, "
                        "description: description, metadata: metadata || `{}`, "
                        "status: 'draft'}",
            response_map="{draft_id: id, status: status, amount: amount, "
                         "expires_at: expires_at}",
            alert_on_dead_letter=True,
            description="Create a draft (not committed) transaction."),
        Operation(
            "commit_transaction", method="POST", path="/transactions/drafts/{draft_id}/commit",
            params_schema=closed_object({"draft_id": _ID}, ["draft_id"]),
            # The seed signs {"draft_id"} as the body; the path names the draft too.
            body=("draft_id",),
            response_map="{transaction_id: id, status: status, amount: amount}",
            # Seed 003 sends the key as Idempotency-Key for the provider to dedupe on:
            # a commit whose answer was lost is re-sent with it, never committed twice.
            requires_idempotency_key=True, provider_dedup=True, alert_on_dead_letter=True,
            description="Commit a draft; needs an idempotency key, never runs twice."),
        Operation(
            "cancel_draft", method="POST", path="/transactions/drafts/{draft_id}/cancel",
            params_schema=closed_object({"draft_id": _ID}, ["draft_id"]),
            # Cancelling a cancelled draft is a no-op for the provider: safe to retry.
            idempotent=True,
            response_map="{draft_id: id, status: status}",
            description="Cancel a draft that was not committed."),
    )
