"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com, same as Svix).

A sender signs ``f"{msg_id}.{timestamp}.{body}"`` with HMAC-SHA256, keyed by the
base64-decoded part of a ``whsec_`` secret, and sends three headers::

    webhook-id: msg_2b...            (stable across retries and replays)
    webhook-timestamp: 1700000000    (unix seconds)
    webhook-signature: v1,<base64> v1,<base64>

Several space-separated signatures are allowed, so during a secret rotation the
sender signs with both secrets and receivers holding either one accept. Svix
sends the same scheme under ``svix-*`` header names; :func:`verify` takes both.
Verification fails closed: any doubt raises :class:`WebhookVerificationError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping, Sequence

from hub.platform.errors import HubError

SECRET_PREFIX = "whsec_"
#: 32 random bytes: within the spec's 24-64 byte range for symmetric secrets.
SECRET_BYTES = 32
#: The spec's and the libraries' default tolerance against replayed messages.
DEFAULT_TOLERANCE = 300
HEADER_PREFIXES = ("webhook-", "svix-")


class WebhookVerificationError(HubError):
    """A message whose signature, timestamp or headers do not check out.

    The message names what was wrong, never a secret or an expected signature.
    """

    code = "INVALID_SIGNATURE"
    http_status = 401


def generate_secret() -> str:
    """A new random ``whsec_`` secret (shown to its owner once, stored encrypted)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional).

    Raises ValueError for a secret that is not base64 or is empty; the message
    does not repeat the secret.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Tolerate unpadded secrets, as the reference libraries do.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not a base64 whsec_ secret") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<base64>`` signature of one message with one secret.

    ``body`` is the exact bytes sent (a str is UTF-8 encoded). Raises ValueError
    for a malformed secret.
    """
    digest = _digest(secret_key(secret), msg_id, int(timestamp), _as_bytes(body))
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int,
                     body: bytes | str) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated.

    Pass both secrets during a rotation (current first). Raises ValueError when
    ``secrets`` is empty or one is malformed.
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def headers(secrets: Sequence[str], msg_id: str, body: bytes | str,
            timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for an outbound message (timestamp: now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(secrets, msg_id, ts, body),
    }


def _header_trio(received: Mapping[str, str]) -> tuple[str, str, str]:
    lowered = {k.lower(): v for k, v in received.items()}
    for prefix in HEADER_PREFIXES:
        trio = tuple(lowered.get(prefix + n, "") for n in ("id", "timestamp", "signature"))
        if any(trio):
            if not all(trio):
                raise WebhookVerificationError(
                    f"missing {prefix}id, {prefix}timestamp or {prefix}signature header")
            return trio  # type: ignore[return-value]
    raise WebhookVerificationError("missing webhook-id, webhook-timestamp and "
                                   "webhook-signature headers")


def _check_timestamp(raw: str, tolerance: int, now: float | None) -> int:
    try:
        timestamp = int(raw)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    return timestamp


def _received_signatures(header: str) -> list[bytes]:
    found = []
    for versioned in header.split():
        version, _, encoded = versioned.partition(",")
        if version != "v1":
            continue  # unknown versions (e.g. v1a asymmetric) are not ours to check
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(secrets: Iterable[str], received: Mapping[str, str], body: bytes | str,
           tolerance: int = DEFAULT_TOLERANCE, *, now: float | None = None) -> str:
    """Check a received message against any of ``secrets``; return its message id.

    Accepts ``webhook-*`` and ``svix-*`` header names, several signatures per
    header, and a timestamp within ``tolerance`` seconds of ``now``. Raises
    :class:`WebhookVerificationError` for missing headers, a stale or future
    timestamp, or no matching signature; ValueError for a malformed secret.
    """
    msg_id, raw_ts, header = _header_trio(received)
    timestamp = _check_timestamp(raw_ts, tolerance, now)
    candidates = _received_signatures(header)
    payload = _as_bytes(body)
    for secret in secrets:
        expected = _digest(secret_key(secret), msg_id, timestamp, payload)
        if any(hmac.compare_digest(expected, sig) for sig in candidates):
            return msg_id
    raise WebhookVerificationError("no webhook-signature matches")
