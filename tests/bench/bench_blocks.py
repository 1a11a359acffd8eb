"""Cost of each building block of the call pipeline, alone, in one process.

What one call pays for each step (single thread, local PostgreSQL and Redis):
cache lookups (L1 hit, L2 hit after an L1 miss, full miss), cache store (both
layers), a breaker-guarded no-op, the provider-hold check, OAuth2 auth with a
token already cached (strategy build + decrypt + header), JSON-Schema validation
and a JMESPath mapping.

    python tests/bench/bench_blocks.py [--n 2000]

Uses its own database (hub_bench_blocks) and Redis db 12; needs local
PostgreSQL and Redis. Prints a Markdown table (p50, p95 in microseconds, ops/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.adapters import transform
from hub.calls import cache, integrations
from hub.calls.auth import strategy_for
from hub.calls.auth.oauth2 import token_cache
from hub.calls.auth.tokens import Token
from hub.calls.breaker import breaker_for
from hub.calls.integrations import IntegrationSpec, credentials_of
from hub.calls.quotas import ProviderHold
from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services

SERVER = os.environ.get("HUB_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("HUB_BENCH_BLOCKS_REDIS_URL", "redis://127.0.0.1:6379/12")
DB = "hub_bench_blocks"
TENANT = "bench"
SCHEMA = {"type": "object", "required": ["customer_id", "amount"],
          "properties": {"customer_id": {"type": "string", "minLength": 3},
                         "amount": {"type": "number", "exclusiveMinimum": 0},
                         "tags": {"type": "array", "items": {"type": "string"}}},
          "additionalProperties": False}
DOC = {"id": "o-1", "customer": {"email": "a@example.com"},
       "lines": [{"sku": str(i), "qty": i} for i in range(20)]}


def timed(n: int, func: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        func(i)
        samples.append(time.perf_counter() - start)
    return samples


def row(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1e6
    p95 = samples[int(len(samples) * 0.95) - 1] * 1e6
    return f"| {name} | {p50:.0f} | {p95:.0f} | {len(samples) / sum(samples):,.0f} |"


def measure(services: Services, n: int) -> list[str]:
    with services.sessions() as session, session.begin():
        integrations.create(session, IntegrationSpec(
            tenant_id=TENANT, name="crm", adapter="rest", base_url="http://provider.invalid",
            auth_type="oauth2_client_credentials"))
        integrations.set_credentials(session, services.vault, TENANT, "crm",
                                     {"client_id": "cid", "client_secret": "cs"})
    with services.sessions() as session:
        crm = integrations.get(session, TENANT, "crm")
        session.expunge(crm)
    for i in range(n):
        cache.store(services, crm, "get", {"id": i}, status_code=200, data=DOC, ttl=3600)
    l1 = [services.settings.redis_key("cache", TENANT, str(crm.id), "get",
                                      cache.cache_key(TENANT, crm.id, "get", {"id": i}))
          for i in range(n)]
    creds = credentials_of(services.vault, crm)
    ctx_strategy = strategy_for(services, crm, creds)
    token_cache(ctx_strategy.ctx, "cid", "").get(lambda: Token("at-bench", "bearer", 3600))
    holds = ProviderHold(services.redis, services.settings.redis_key("hold") + ":")
    prepared = requests.Request("GET", "http://provider.invalid/x").prepare()
    return [
        row("cache.lookup, L1 hit", timed(n, lambda i: cache.lookup(
            services, crm, "get", {"id": i}))),
        row("cache.lookup, L2 hit (L1 key deleted)", timed(n, lambda i: (
            services.redis.delete(l1[i]), cache.lookup(services, crm, "get", {"id": i})))),
        row("cache.lookup, miss (both layers)", timed(n, lambda i: cache.lookup(
            services, crm, "get", {"id": -i - 1}))),
        row("cache.store (both layers)", timed(n, lambda i: cache.store(
            services, crm, "get", {"id": n + i}, status_code=200, data=DOC, ttl=3600))),
        row("breaker_for().call(no-op)", timed(n, lambda i: breaker_for(services, crm).call(
            lambda: None))),
        row("ProviderHold.held_for", timed(n, lambda i: holds.held_for(f"{TENANT}:{crm.id}"))),
        row("oauth2 strategy_for + apply (token cached)", timed(n, lambda i: strategy_for(
            services, crm, creds).apply(prepared))),
        row("transform.validate (small schema)", timed(n, lambda i: transform.validate(
            {"customer_id": "c-1", "amount": 5, "tags": ["a", "b"]}, SCHEMA))),
        row("transform.apply (JMESPath, 20 lines)", timed(n, lambda i: transform.apply(
            {"skus": "lines[].sku", "total": "sum(lines[].qty)"}, DOC))),
    ]


def _clear(services: Services) -> None:
    keys = list(services.redis.scan_iter("benchblocks:*", count=1000))
    if keys:
        services.redis.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update(HUB_DATABASE_URL=with_database(SERVER, DB), HUB_REDIS_URL=REDIS,
                      HUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                      HUB_REDIS_PREFIX="benchblocks:", HUB_ALLOW_PRIVATE_NETWORKS="1")
    drop_database(SERVER, DB)  # a crashed earlier run left rows behind
    create_database(SERVER, DB)
    settings = load_settings()
    services = Services(settings, RecordingDispatcher())
    try:
        migrate.upgrade(settings)
        _clear(services)
        lines = measure(services, args.n)
    finally:
        _clear(services)
        services.close()
        drop_database(settings.database_url, DB)
    print(f"n = {args.n} per row\n")
    print("| step | p50 µs | p95 µs | ops/s (1 thread) |\n|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
