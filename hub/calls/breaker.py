"""Circuit breakers per integration, one shared state for every worker on every machine.

pybreaker keeps the state (closed/open/half-open, failure counter, opened-at) in
Redis through ``CircuitRedisStorage`` under a tenant- and integration-scoped
namespace, so a provider that failed for one worker is seen failing by all.

Two things are added on top of pybreaker:

- Only provider failures count: network errors, timeouts and 5xx
  (:class:`~hub.platform.errors.RetryableError` except 429 ``RateLimited``). A 4xx means
  the provider is up; it counts as a success (pybreaker resets the consecutive
  failure counter).
- One half-open trial across all workers: pybreaker lets every caller through
  while half-open; here a Redis ``SET NX`` lets exactly one worker run the trial
  call, the others fail fast with CIRCUIT_OPEN until it resolves.

Thresholds come from ``integration.config["breaker"]``: ``failure_threshold``
(default 5 consecutive failures), ``recovery_timeout`` (default 60 s; pybreaker
stores the opening time in whole seconds, so keep it >= 2), ``success_threshold``
(default 1 successful trial closes it). Usage by the pipeline::

    breaker = breaker_for(services, integration)     # one per call: cheap, no shared lock
    response = breaker.call(send_request)            # raises CircuitOpen when open
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import pybreaker
import redis
import requests
from redis.lock import Lock

from hub.platform.errors import CircuitOpen, RateLimited, RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_RECOVERY_TIMEOUT = 60.0
DEFAULT_SUCCESS_THRESHOLD = 1

class _IntegrationLike(Protocol):
    @property
    def id(self) -> Any: ...

    @property
    def tenant_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any] | None: ...


class _ServicesLike(Protocol):
    @property
    def redis_bytes(self) -> redis.Redis: ...

    @property
    def settings(self) -> Any: ...


def counts_as_failure(exc: BaseException) -> bool:
    """True for errors that say the provider is unhealthy: network errors, timeouts,
    5xx (RetryableError), raw requests/socket errors. Not 429, not 4xx, not bugs."""
    if isinstance(exc, RateLimited):
        return False
    return isinstance(exc, (RetryableError, requests.RequestException, OSError))


class _RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, initialised in one round trip instead of three
    (a breaker is built per call)."""

    def _initialize_redis_state(self, state: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.setnx(self._namespace("fail_counter"), 0)
        pipe.setnx(self._namespace("success_counter"), 0)
        pipe.setnx(self._namespace("state"), state)
        pipe.execute()


def _storage(client: redis.Redis, namespace: str) -> pybreaker.CircuitBreakerStorage:
    try:
        return _RedisStorage(pybreaker.STATE_CLOSED, client, namespace=namespace)
    except (redis.RedisError, OSError):
        # Fail open, as pybreaker's Redis storage itself does once built: a breaker
        # protects the provider, and refusing every call because Redis blinked
        # would turn a Redis outage into a provider outage.
        log.warning("breaker state store unavailable; %s runs closed, unshared", namespace)
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)


class Breaker:
    """A pybreaker circuit with Redis storage plus a one-trial half-open gate."""

    def __init__(self, client: redis.Redis, namespace: str, *,
                 failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
                 recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT,
                 success_threshold: int = DEFAULT_SUCCESS_THRESHOLD,
                 name: str | None = None) -> None:
        self._client = client
        self.namespace = namespace
        self.name = name or namespace
        storage = _storage(client, namespace)
        # throw_new_error_on_trip=False: the call that trips the breaker re-raises its
        # own error (e.g. TIMEOUT), so retries and dead letters see the real cause.
        self.circuit = pybreaker.CircuitBreaker(
            fail_max=failure_threshold, reset_timeout=recovery_timeout,
            success_threshold=success_threshold, state_storage=storage, name=self.name,
            exclude=[lambda exc: not counts_as_failure(exc)], throw_new_error_on_trip=False)
        self._trial_key = namespace + ":trial"

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` as stored in Redis (``closed`` when
        Redis is unreachable: pybreaker fails open)."""
        return self.circuit.current_state

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial through (0 when not open)."""
        if self.state != pybreaker.STATE_OPEN:
            return 0.0
        opened_at = self.circuit._state_storage.opened_at
        if opened_at is None:
            return 0.0
        reopen = opened_at + timedelta(seconds=self.circuit.reset_timeout)
        return max((reopen - datetime.now(UTC)).total_seconds(), 0.0)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` through the breaker and return its result.

        Raises CircuitOpen (with ``details.retry_after``) without calling ``func``
        when the circuit is open, or half-open with another worker's trial running;
        otherwise re-raises whatever ``func`` raises, after counting it.
        """
        trial = self._admit()
        try:
            return self.circuit.call(func, *args, **kwargs)
        except pybreaker.CircuitBreakerError as exc:
            raise self._open_error() from exc
        finally:
            if trial is not None:
                self._end_trial(trial)

    def _admit(self) -> Lock | None:
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return None
        if state == pybreaker.STATE_OPEN and self.retry_after() > 0:
            raise self._open_error()
        # The trial lock lives as long as a recovery period: a worker that dies
        # mid-trial blocks trials for at most that long.
        trial = self._client.lock(self._trial_key, timeout=max(self.circuit.reset_timeout, 1.0),
                                  blocking=False, thread_local=False)
        try:
            if trial.acquire():
                return trial
        except redis.RedisError:
            log.warning("breaker %s: trial lock unavailable, allowing the call", self.name)
            return None
        raise self._open_error()

    def _end_trial(self, trial: Lock) -> None:
        try:
            trial.release()
        except redis.RedisError:  # includes LockNotOwnedError: the lock outlived its TTL
            log.warning("breaker %s: could not release the trial lock", self.name)

    def _open_error(self) -> CircuitOpen:
        wait = round(self.retry_after(), 3)
        return CircuitOpen(f"circuit of {self.name} is open: the provider failed repeatedly",
                           details={"retry_after": wait, "state": self.state},
                           retry_after=wait)

    def reset(self) -> None:
        """Close the circuit and zero its counters (operators, tests)."""
        self.circuit.close()
        self.circuit._state_storage.reset_counter()


def namespace_for(settings: Any, tenant: str, integration_id: str) -> str:
    """The Redis namespace of one integration's breaker (tenant-isolated)."""
    return str(settings.redis_key("breaker", tenant, integration_id))


def breaker_for(services: _ServicesLike, integration: _IntegrationLike) -> Breaker:
    """The shared breaker of ``integration`` with its configured thresholds.

    Build one per call: the object is cheap (state lives in Redis) and pybreaker
    serialises calls through one instance with a lock, which would serialise a
    threaded worker's calls to the same provider.
    """
    config = (integration.config or {}).get("breaker") or {}
    return Breaker(
        services.redis_bytes,
        namespace_for(services.settings, integration.tenant_id, str(integration.id)),
        failure_threshold=int(config.get("failure_threshold", DEFAULT_FAILURE_THRESHOLD)),
        recovery_timeout=float(config.get("recovery_timeout", DEFAULT_RECOVERY_TIMEOUT)),
        success_threshold=int(config.get("success_threshold", DEFAULT_SUCCESS_THRESHOLD)),
        name=f"{integration.tenant_id}/{integration.name}")
