"""What a Redis must run with so that it loses none of the hub's work.

Calls live only in the broker until a worker runs them (unlike webhook events,
deliveries and due retries, which are rows in PostgreSQL first), so a broker
Redis needs an append-only file (``appendonly yes``, ``appendfsync everysec``:
at most a second of writes lost on a crash), and no Redis of the hub may evict
keys under memory pressure (``maxmemory-policy noeviction``). Every deploy recipe
and ``hub dev``'s embedded Redis run so; ``hub health`` and ``hub dev`` say when
a Redis does not.
"""

from __future__ import annotations

import redis

#: The settings every recipe gives Redis (redis-server flags).
REDIS_DURABLE_FLAGS = {"appendonly": "yes", "appendfsync": "everysec",
                       "maxmemory-policy": "noeviction"}


def redis_warnings(client: redis.Redis, *, broker: bool) -> list[str]:
    """What a Redis runs with that can lose the hub's work (README "What survives").

    An evicting ``maxmemory-policy`` drops queued messages, quotas and locks under
    memory pressure; a broker Redis without AOF loses at a restart every call
    queued in it (calls live only in the broker until they run). Raises
    redis.RedisError when the server does not answer.
    """
    found = []
    policy = str(client.info("memory").get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        found.append(f"maxmemory-policy is {policy}: under memory pressure Redis evicts "
                     "keys (queued messages, quotas, locks); run it with noeviction")
    if broker and not int(client.info("persistence").get("aof_enabled", 0)):
        found.append("no AOF persistence (appendonly no): a Redis restart loses every call "
                     "queued in the broker; run it with appendonly yes, appendfsync everysec")
    return found
