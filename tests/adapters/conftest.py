"""Fixtures of the provider adapter tests: registration through the `hub` command as the
README shows it, and calls sent by name by a client that imports nothing of the hub."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import Hub

TIMEOUT = 30
#: Fast retries for tests: the seed's policy, squeezed into milliseconds.
FAST_RETRY = {"base": 0.01, "cap": 0.05, "max_attempts": 3}


def register(client_app: Any, tenant: str, name: str, adapter: str, base_url: str,
             auth_type: str, credentials: dict[str, Any],
             config: dict[str, Any] | None = None) -> Caller:
    """``hub integrations add`` + ``hub credentials set`` (secrets on stdin), as the
    README shows it; returns the caller of the new integration."""
    hub = Hub()
    config = {"retry": FAST_RETRY, **(config or {})}
    added = hub("integrations", "add", "--tenant", tenant, "--name", name, "--adapter",
                adapter, "--base-url", base_url, "--auth-type", auth_type,
                "--config", json.dumps(config))
    assert added.exit_code == 0, added.output
    stored = hub("credentials", "set", "--tenant", tenant, "--integration", name,
                 input=json.dumps(credentials))
    assert stored.exit_code == 0, stored.output
    return Caller(client_app, tenant, name, adapter)


class Caller:
    """Sends ``hub.call`` or ``hub.<adapter>.<operation>`` by name and waits."""

    def __init__(self, client_app: Any, tenant: str, integration: str, adapter: str) -> None:
        self.client_app, self.tenant = client_app, tenant
        self.integration, self.adapter = integration, adapter

    def send(self, operation: str, params: dict[str, Any] | None = None, *,
             by: str = "hub.call", **options: Any) -> Any:
        """The AsyncResult of the operation sent ``by`` hub.call or by its own name."""
        if by == "hub.call":
            return self.client_app.send_task("hub.call", kwargs={
                "tenant": self.tenant, "integration": self.integration,
                "operation": operation, "params": params, **options})
        return self.client_app.send_task(f"hub.{self.adapter}.{operation}",
                                         args=[self.tenant, self.integration],
                                         kwargs={**(params or {}), **options})

    def __call__(self, operation: str, params: dict[str, Any] | None = None, *,
                 by: str = "hub.call", **options: Any) -> Any:
        return self.send(operation, params, by=by, **options).get(timeout=TIMEOUT, interval=0.05)

    def error(self, operation: str, params: dict[str, Any] | None = None, *,
              by: str = "hub.call", **options: Any) -> dict[str, Any]:
        """The failure envelope's ``error`` of a call that must fail."""
        result = self.send(operation, params, by=by, **options)
        with pytest.raises(Exception) as caught:
            result.get(timeout=TIMEOUT, interval=0.05)
        assert result.state == "FAILURE"
        return caught.value.args[0]["error"]


#: Both ways a client names an operation (DESIGN §4).
BY_NAME = pytest.mark.parametrize("by", ["hub.call", "own task"])


class Events:
    """Events of one tenant on ``integration.*``, as a subscriber sees them."""

    def __init__(self, pubsub: Any, tenant: str) -> None:
        self.pubsub, self.tenant, self.seen = pubsub, tenant, []

    def wait(self, event_type: str, timeout: float = 15.0) -> dict[str, Any]:
        """The first event of ``event_type`` (already seen or arriving within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.seen if e["type"] == event_type), None)
            if found is not None:
                return found
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                event = json.loads(message["data"])
                if event["tenant"] == self.tenant:
                    self.seen.append(event)
        raise AssertionError(f"no {event_type} event for {self.tenant} within {timeout}s")


@pytest.fixture
def events(redis_client: Any, tenant: str) -> Iterator[Events]:
    """Subscribed before the test acts, so no event of its tenant is missed."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe("integration.*")
    pubsub.get_message(timeout=1)
    yield Events(pubsub, tenant)
    pubsub.close()
