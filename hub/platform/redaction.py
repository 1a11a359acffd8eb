"""Redaction of secrets from anything the hub logs, audits, publishes or returns.

Four shapes of data leave the hub and may carry a secret: headers, URLs (query
parameters and userinfo), bodies (JSON fields), and free text (error messages,
tracebacks). Each has one function here. Redaction is by name (header, query
parameter, JSON field) and, for free text, by value: :func:`redact_text` removes
every known secret value, whatever surrounds it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

MASK = "[REDACTED]"

#: Headers that always carry credentials.
SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-hmac-signature", "x-auth-token", "x-amz-security-token",
})

#: Any header, query parameter or JSON field whose name contains one of these words.
_SENSITIVE_NAME = re.compile(r"token|secret|key|passw|signature|credential|auth|session",
                             re.IGNORECASE)

#: Query parameters that carry credentials (besides names matching _SENSITIVE_NAME).
SENSITIVE_QUERY_PARAMS = frozenset({
    "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token",
    "client_secret", "signature", "sig", "password", "pass", "secret", "code",
})

#: JSON fields redacted in every body, on top of an integration's configured ones.
DEFAULT_SENSITIVE_FIELDS = frozenset({
    "password", "client_secret", "access_token", "refresh_token", "id_token", "api_key",
    "secret", "token", "private_key",
})

#: Shorter values are not scrubbed from free text: they would mangle ordinary words.
MIN_SECRET_LENGTH = 4

TRUNCATION_MARK = "...[truncated {n} chars]"


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    """True for a header/parameter/field name that looks like it holds a credential."""
    # Cached: every webhook redacts the same dozen header names before it is stored.
    lowered = name.lower()
    return (lowered in SENSITIVE_HEADERS or lowered in SENSITIVE_QUERY_PARAMS
            or bool(_SENSITIVE_NAME.search(lowered)))


def redact_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A plain dict copy of ``headers`` with credential-bearing values masked."""
    if not headers:
        return {}
    return {str(k): (MASK if is_sensitive_name(str(k)) else str(v)) for k, v in headers.items()}


def redact_url(url: str | None, secrets: Iterable[str] = ()) -> str | None:
    """``url`` with userinfo and credential-bearing query parameters masked, and any
    known ``secrets`` value (a key sent under a parameter name of the provider's own
    choosing) scrubbed."""
    if not url:
        return url
    url = redact_text(url, secrets) or ""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_sensitive_name(k) else v) for k, v in pairs],
                          safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_json(value: Any, fields: Iterable[str] = ()) -> Any:
    """A copy of a JSON value with every field named in ``fields`` (or in
    :data:`DEFAULT_SENSITIVE_FIELDS`) masked, at any depth. Field names compare
    case-insensitively."""
    names = {f.lower() for f in fields} | DEFAULT_SENSITIVE_FIELDS
    return _redact_value(value, names)


def _redact_value(value: Any, names: set[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: (MASK if str(k).lower() in names else _redact_value(v, names))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, names) for v in value]
    return value


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARK.format(n=len(text) - limit)


def redact_body(body: bytes | str | None, *, fields: Iterable[str] = (),
                secrets: Iterable[str] = (), limit: int = 4096) -> str | None:
    """A body made safe for an audit row: JSON fields redacted (:func:`redact_json`),
    known secret values scrubbed (:func:`redact_text`), truncated to ``limit`` chars.

    Non-JSON bodies are only scrubbed and truncated; binary bodies (not UTF-8, or
    holding a NUL, which PostgreSQL text cannot store either) are summarised.
    """
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(body)} bytes of binary data>"
    if "\x00" in body:
        return f"<{len(body.encode('utf-8', 'replace'))} bytes of binary data>"
    try:
        text = json.dumps(redact_json(json.loads(body), fields), separators=(",", ":"))
    except ValueError:
        text = body
    return truncate(redact_text(text, secrets) or "", limit)


def secret_values(credentials: Any) -> list[str]:
    """Every string (and number) inside a credentials object, longest first, for
    :func:`redact_text`, each also as it looks percent-encoded in a URL (a key sent in
    a query string or a path segment). Accepts a :class:`hub.platform.vault.Secret`
    or a plain value."""
    reveal = getattr(credentials, "reveal", None)
    value = reveal() if callable(reveal) else credentials
    found: set[str] = set()
    _collect(value, found)
    found |= {encoded for s in found for encoded in (quote(s, safe=""), quote_plus(s))}
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _collect(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, found)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        found.add(str(value))


def redact_text(text: str | None, secrets: Iterable[str]) -> str | None:
    """``text`` with every occurrence of every secret value replaced by the mask.

    Values shorter than :data:`MIN_SECRET_LENGTH` are left alone (they cannot be
    told apart from ordinary text). Longest values are replaced first, so a secret
    containing another is masked whole.
    """
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
