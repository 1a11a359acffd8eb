"""Access tokens shared by every worker: cached in Redis, fetched once under a lock.

A token is cached encrypted with the vault (a leaked Redis dump or ``MONITOR``
shows only Fernet tokens) until shortly before it expires. When many tasks find
no token at the same moment, one of them takes a Redis lock (``SET NX PX``) and
fetches; the others poll for the token it stores, and take over the lock only
if its holder died (the lock expires). So N concurrent tasks cause one request
to the token endpoint, not N.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from hub.platform.errors import RetryableError, VaultError
from hub.platform.vault import Vault

log = logging.getLogger(__name__)

#: Seconds a token is considered expired before its real expiry (clock skew, slow calls).
DEFAULT_MARGIN = 60
#: How long one fetch may hold the lock by default; waiters give up after twice this.
#: It must outlast the token request itself (see :func:`hub.calls.auth.oauth2.token_cache`),
#: or a second worker could spend the same rotating refresh token.
LOCK_TTL_MS = 15_000
POLL_INTERVAL = 0.05

# Delete KEYS[1] only if it still holds ARGV[1] (our lock, or the token we used).
_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Replace KEYS[1]'s value ARGV[1] by ARGV[2], keeping its expiry, unless a worker
# stored a fresh token in between (then that one is already under the current key).
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') and 1
end
return 0
"""


@dataclass(frozen=True)
class Token:
    access_token: str
    token_type: str
    expires_in: float

    def __repr__(self) -> str:
        return f"Token(type={self.token_type!r}, expires_in={self.expires_in})"


def cache_ttl(expires_in: float, margin: float = DEFAULT_MARGIN) -> float:
    """Seconds to keep a token: ``expires_in - margin``, but at least half its life
    for short-lived tokens (a 60 s token is still worth caching 30 s)."""
    return max(expires_in - margin, expires_in / 2, 1.0)


class TokenCache:
    """One cached token under ``key`` (a Redis key in the hub's namespace)."""

    def __init__(self, client: redis.Redis, vault: Vault, key: str, *,
                 margin: float = DEFAULT_MARGIN, lock_ttl_ms: int = LOCK_TTL_MS) -> None:
        self._client = client
        self._vault = vault
        self.key = key
        self.lock_key = key + ":lock"
        self._margin = margin
        self._lock_ttl_ms = lock_ttl_ms
        self._cad: Any = client.register_script(_COMPARE_AND_DELETE)
        self._used: str | None = None  # the ciphertext of the token we handed out

    def get(self, fetch: Callable[[], Token]) -> str:
        """The cached access token, fetching it with ``fetch`` (once across all
        workers) when missing. Raises what ``fetch`` raises, or RetryableError when
        another worker holds the lock for too long. When Redis is unavailable the
        token is fetched for this call alone (fail open: a token request per call
        beats failing every call)."""
        try:
            return self._get_shared(fetch)
        except (redis.RedisError, OSError):
            log.warning("token cache %s unavailable; fetching a token for this call",
                        self.key, exc_info=True)
            self._used = None
            return fetch().access_token

    def _get_shared(self, fetch: Callable[[], Token]) -> str:
        deadline = time.monotonic() + 2 * self._lock_ttl_ms / 1000
        while True:
            cached = self._cached()
            if cached is not None:
                return cached
            lock = secrets.token_hex(16)
            if self._client.set(self.lock_key, lock, nx=True, px=self._lock_ttl_ms):
                try:
                    return self._fetch_and_store(fetch)
                finally:
                    self._cad(keys=[self.lock_key], args=[lock])
            if time.monotonic() > deadline:
                raise RetryableError("timed out waiting for another worker's token request")
            time.sleep(POLL_INTERVAL)

    def _fetch_and_store(self, fetch: Callable[[], Token]) -> str:
        # Another worker may have stored a token between our GET and our lock.
        cached = self._cached()
        if cached is not None:
            return cached
        token = fetch()
        raw = self._vault.encrypt({"access_token": token.access_token,
                                   "token_type": token.token_type})
        ttl_ms = int(cache_ttl(token.expires_in, self._margin) * 1000)
        self._client.set(self.key, raw, px=ttl_ms)
        self._used = raw
        return token.access_token

    def _cached(self) -> str | None:
        """The cached access token, or None when there is none or no key opens it.

        An unreadable token (encrypted under a key since dropped from
        HUB_ENCRYPTION_KEYS) is only a cache entry: it is deleted and refetched,
        never a VaultError failing the call (issue 9 item 13).
        """
        raw = self._client.get(self.key)
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            value = self._vault.decrypt(text, owner=f"cached token {self.key}")
        except VaultError:
            log.warning("cached token %s: no key opens it; fetching a new one", self.key)
            self._cad(keys=[self.key], args=[text])
            return None
        self._used = text
        return str(value["access_token"])

    def invalidate(self) -> None:
        """Drop the cached token if it is still the one :meth:`get` returned, so a
        burst of 401s does not throw away the fresh token one of them fetched."""
        if self._used is not None:
            try:
                self._cad(keys=[self.key], args=[self._used])
            except (redis.RedisError, OSError):
                log.warning("token cache %s unavailable; nothing to invalidate", self.key)
            self._used = None

    def clear(self) -> None:
        """Drop the cached token whatever it is (credentials changed)."""
        self._client.delete(self.key)


@dataclass
class RotationCount:
    """Cached tokens seen by :func:`rotate_cached`."""

    rotated: int = 0
    dropped: int = 0


def rotate_cached(client: redis.Redis, vault: Vault, match: str) -> RotationCount:
    """Re-encrypt every cached token whose key matches the SCAN pattern ``match``
    under the vault's current key, keeping its expiry (``hub keys rotate``).

    A token no key opens is dropped (the next call fetches a new one). Each
    change is a compare-and-set, so a token a worker stored meanwhile is left as
    it is. Raises redis.RedisError when Redis is unavailable.
    """
    count = RotationCount()
    swap = client.register_script(_COMPARE_AND_SET)
    drop = client.register_script(_COMPARE_AND_DELETE)
    for key in client.scan_iter(match=match, count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        raw = None if name.endswith(":lock") else client.get(name)
        if raw is None:
            continue
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            fresh = vault.rotate_token(text, owner=f"cached token {name}")
        except VaultError:
            count.dropped += int(drop(keys=[name], args=[text]) or 0)
            continue
        count.rotated += int(swap(keys=[name], args=[text, fresh]) or 0)
    return count
