"""``hub keys rotate`` against real PostgreSQL and Redis."""

from __future__ import annotations

from hub.platform.vault import Vault, generate_key
from tests.hub.fake_http import serve
from tests.hub.test_auth import CC, TokenServer, apply, make_integration, token_keys


def test_rotate_reencrypts_cached_oauth2_tokens_and_drops_unreadable_ones(hub, services,
                                                                          settings, tenant):
    # Issue 9 item 13: tokens cached in Redis were left under the old key.
    old_key, new_key = settings.encryption_keys[0], generate_key()
    with serve(TokenServer()) as server:
        row = make_integration(services, tenant, server.url, "oauth2_client_credentials", CC)
        apply(services, row)
    [key] = token_keys(services, tenant, row)
    ttl = services.redis.pttl(key)
    stray = key[:-16] + "0" * 16  # a token of a former client id, under a lost key
    services.redis.set(stray, Vault([generate_key()]).encrypt({"access_token": "x"}), px=ttl)
    try:
        code, report = hub.json("keys", "rotate",
                                env={"HUB_ENCRYPTION_KEYS": f"{new_key},{old_key}"})

        assert code == 0 and report["cached_tokens"]["rotated"] >= 1
        assert report["cached_tokens"]["dropped"] >= 1
        assert Vault([new_key]).decrypt(services.redis.get(key), owner="t")["access_token"] \
            == "at-1"
        assert 0 < services.redis.pttl(key) <= ttl  # its expiry is kept
        assert not services.redis.exists(stray)
    finally:
        # Every secret of the shared test database and Redis back under the session's key.
        hub("keys", "rotate", env={"HUB_ENCRYPTION_KEYS": f"{old_key},{new_key}"})
    assert Vault([old_key]).decrypt(services.redis.get(key), owner="t")["access_token"] == "at-1"
