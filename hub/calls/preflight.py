"""What a call reads from Redis before it runs, in one round trip (issue 10).

A call reads three things before its request leaves: the generation of its tenant's
integrations (is the resolved integration this process keeps still current?), the
provider's hold on the integration (a quota the provider said is spent) and the
state of its circuit breaker. Its task also counts the message's receive (the
poison-message guardrail, :mod:`hub.ops.guardrails`). Read one after the other
these are four round trips; :func:`read` sends them in one pipeline, for the
integration this process resolved last under that name. The call uses the
generation always, and the hold and breaker state only when the integration it
resolves is that one (a changed or failed-over integration reads its own).

Each value is read a few milliseconds earlier than the step that uses it, as any
other worker's change can land between a read and its use anyway. Redis down:
every value is missing and each step reads (and fails open) on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from hub.calls import integrations
from hub.calls.breaker import breaker_for
from hub.platform import changes
from hub.platform.services import Services

log = logging.getLogger(__name__)

#: The generation read when Redis did not answer (integrations.resolve_active's).
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Preflight:
    """Values read before a call of ``integration`` of ``tenant``.

    ``generation``: of the tenant's integrations (None when never bumped,
    :data:`UNAVAILABLE` when Redis did not answer). ``row_id``: the integration the
    hold and breaker values are for (None: none were read). ``counter``: the value
    of the counter the caller asked to increment (None: Redis did not answer),
    ``counter_key`` its key (set only when it was incremented).
    """

    tenant: str
    integration: str
    generation: str | None
    row_id: str | None = None
    hold_ms: int | None = None
    breaker: tuple[Any, Any] | None = None
    counter: int | None = None
    counter_key: str | None = None

    def for_row(self, row_id: Any) -> bool:
        """Whether the hold and breaker values were read for integration ``row_id``."""
        return self.row_id is not None and self.row_id == str(row_id)


def hold_key(services: Services, row: Any) -> str:
    """The Redis key of the provider's hold on ``row`` (:class:`~hub.calls.quotas.
    ProviderHold` under the pipeline's ``hold`` prefix, scope ``tenant:id``)."""
    return f"{services.settings.redis_key('hold')}:{row.tenant_id}:{row.id}"


def read(services: Services, tenant: Any, integration: Any, *,
         counter: tuple[str, int] | None = None) -> Preflight | None:
    """Read in one round trip what a call of ``integration`` needs before it runs, and
    INCR ``counter`` (key, TTL in seconds) with it. None for arguments that are not
    names (the call fails validation anyway)."""
    if not isinstance(tenant, str) or not isinstance(integration, str):
        return None
    cached = integrations.cached_row(services, tenant, integration)
    pipe = services.redis.pipeline(transaction=False)
    if counter is not None:
        pipe.incr(counter[0])
        pipe.expire(counter[0], counter[1])
    pipe.get(changes.generation_key(services.settings, tenant))
    if cached is not None:
        pipe.pttl(hold_key(services, cached))
        pipe.mget(breaker_for(services, cached).state_keys)
    try:
        values = pipe.execute()
    except (redis.RedisError, OSError):
        log.warning("call pre-reads unavailable for %s/%s (each step reads on its own)",
                    tenant, integration)
        return Preflight(tenant, integration, UNAVAILABLE)
    count = key = None
    if counter is not None:
        incremented, _expired, *values = values
        count, key = int(incremented), counter[0]
    generation = None if values[0] is None else str(values[0])
    if cached is None:
        return Preflight(tenant, integration, generation, counter=count, counter_key=key)
    ttl, state = values[1], values[2]
    return Preflight(tenant, integration, generation, row_id=str(cached.id),
                     hold_ms=int(ttl), breaker=(state[0], state[1]), counter=count,
                     counter_key=key)
