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

    breaker = breaker_for(services, integration)     # one per integration per process
    response = breaker.call(send_request)            # raises CircuitOpen when open

A healthy call costs one Redis round trip (state and failure counter in one
MGET); a success after failures, a failure and the half-open trial cost more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
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

    def shared(self, key: Hashable, build: Callable[[], T]) -> T: ...


def counts_as_failure(exc: BaseException) -> bool:
    """True for errors that say the provider is unhealthy: network errors, timeouts,
    5xx (RetryableError), raw requests/socket errors. Not 429, not 4xx, not bugs."""
    if isinstance(exc, RateLimited):
        return False
    return isinstance(exc, (RetryableError, requests.RequestException, OSError))


class _RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, initialised in one round trip instead of three."""

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
        self._state_keys = [f"{namespace}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{key}"
                            for key in ("state", "fail_counter")]

    @property
    def state_keys(self) -> list[str]:
        """The keys of the state and failure counter (read together by MGET)."""
        return list(self._state_keys)

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

        Safe to share between threads: ``func`` runs outside pybreaker's lock
        (``CircuitBreaker.call`` holds it for the whole call, which would let one
        call at a time through a breaker shared by a worker's threads); only the
        bookkeeping after a failure, or in a state other than closed, takes it.
        """
        return self.call_read(None, func, *args, **kwargs)

    def call_read(self, read: tuple[Any, Any] | None, func: Callable[..., T], *args: Any,
                  **kwargs: Any) -> T:
        """:meth:`call`, with the values of :attr:`state_keys` already read (``read``,
        e.g. in a pipeline with other reads; None reads them here)."""
        state, failures = self._read() if read is None else self._parse(read)
        trial = self._admit(state)
        if trial is not None and state == pybreaker.STATE_OPEN:
            # This call is the trial after the recovery timeout: half-open, as
            # pybreaker's own open state does before letting a call through.
            with self.circuit._lock:
                self.circuit.half_open()
            state = pybreaker.STATE_HALF_OPEN
        try:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._count_error(exc)
                raise
            self._count_success(state, failures)
            return result
        finally:
            if trial is not None:
                self._end_trial(trial)

    def _read(self) -> tuple[str, int]:
        """State and consecutive failures, in one round trip (closed and 0 when Redis
        is unreachable: fail open, as pybreaker's Redis storage does)."""
        storage = self.circuit._state_storage
        if not isinstance(storage, _RedisStorage):
            return storage.state, storage.counter
        try:
            values = self._client.mget(self._state_keys)
        except (redis.RedisError, OSError):
            log.warning("breaker %s: state unavailable, running closed", self.name)
            return pybreaker.STATE_CLOSED, 0
        return self._parse((values[0], values[1]))

    def _parse(self, values: tuple[Any, Any]) -> tuple[str, int]:
        storage = self.circuit._state_storage
        if not isinstance(storage, _RedisStorage):
            return storage.state, storage.counter
        state, failures = values
        if state is None:  # expired or flushed: start closed again
            storage._initialize_redis_state(pybreaker.STATE_CLOSED)
            return pybreaker.STATE_CLOSED, 0
        return (state.decode() if isinstance(state, bytes) else str(state)), int(failures or 0)

    def _count_error(self, exc: BaseException) -> None:
        # pybreaker re-raises the error when it trips the circuit; the caller does.
        with self.circuit._lock, contextlib.suppress(BaseException):
            self._synced()._handle_error(exc, reraise=False)

    def _count_success(self, state: str, failures: int) -> None:
        if state == pybreaker.STATE_CLOSED and failures == 0:
            return  # nothing to reset: the common case costs no write
        with self.circuit._lock:
            self._synced()._handle_success()

    def _synced(self) -> pybreaker.CircuitBreakerState:
        """pybreaker's state object, caught up with Redis *without* its notification:
        a long-lived instance noticing that another worker closed the circuit would
        otherwise reset the failure counter the others are building up."""
        current = self.circuit.current_state
        if current != self.circuit._state.name:
            self.circuit._state = self.circuit._create_new_state(current, notify=False)
        return self.circuit._state

    def _admit(self, state: str) -> Lock | None:
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

    One object per integration (and thresholds) per process, shared by every
    thread (:meth:`Breaker.call` does not serialise them); its state lives in
    Redis, shared by every worker.
    """
    config = (integration.config or {}).get("breaker") or {}
    namespace = namespace_for(services.settings, integration.tenant_id, str(integration.id))
    thresholds = (int(config.get("failure_threshold", DEFAULT_FAILURE_THRESHOLD)),
                  float(config.get("recovery_timeout", DEFAULT_RECOVERY_TIMEOUT)),
                  int(config.get("success_threshold", DEFAULT_SUCCESS_THRESHOLD)))
    name = f"{integration.tenant_id}/{integration.name}"

    def build() -> Breaker:
        return Breaker(services.redis_bytes, namespace, failure_threshold=thresholds[0],
                       recovery_timeout=thresholds[1], success_threshold=thresholds[2],
                       name=name)

    return services.shared(("breaker", namespace, thresholds, name), build)


#: pybreaker's key names under a breaker's namespace (``CircuitRedisStorage``).
_STATE_KEY, _OPENED_AT_KEY = (f"{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{key}"
                              for key in ("state", "opened_at"))


def peek_states(services: _ServicesLike,
                integrations: Sequence[_IntegrationLike]) -> dict[str, str]:
    """The breaker state of each integration by id: ``closed``, ``open`` or ``half-open``
    (open, and its recovery timeout is over: the next call is the trial), read in one
    round trip without creating state for a breaker that never ran (that one is
    closed). Raises redis.RedisError when Redis does not answer."""
    pipe = services.redis_bytes.pipeline(transaction=False)
    for row in integrations:
        namespace = namespace_for(services.settings, row.tenant_id, str(row.id))
        pipe.get(f"{namespace}:{_STATE_KEY}")
        pipe.get(f"{namespace}:{_OPENED_AT_KEY}")
    values = pipe.execute()
    now = datetime.now(UTC).timestamp()
    states = {}
    for index, row in enumerate(integrations):
        raw, opened_at = values[2 * index], values[2 * index + 1]
        state = raw.decode() if raw else pybreaker.STATE_CLOSED
        recovery = float(((row.config or {}).get("breaker") or {}).get(
            "recovery_timeout", DEFAULT_RECOVERY_TIMEOUT))
        if state == pybreaker.STATE_OPEN and opened_at and now >= int(opened_at) + recovery:
            state = pybreaker.STATE_HALF_OPEN
        states[str(row.id)] = state
    return states
