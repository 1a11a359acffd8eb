"""Which event a webhook is: its id (the deduplication key per endpoint) and its type.

Where each comes from, first found wins:

1. the endpoint's configuration, for generic and custom senders: ``config.event_id``
   / ``config.event_type`` = ``{"header": "<name>"}`` or ``{"path": "<JMESPath>"}``
   into the JSON body (``hub webhooks add --id-header/--id-path/--type-header/
   --type-path``);
2. the scheme's own rule: Stripe's ``id``, GitHub's ``X-GitHub-Delivery``, Google's
   channel id + message number, Telegram's ``update_id``...;
3. for the id, when neither names one:

   - a non-empty body is identified by its SHA-256 (``sha256:<hex>``): a sender's
     retry repeats the same bytes and is answered ``duplicate``, and an event whose
     bytes equal an earlier one's on the same endpoint is taken for that one. A
     sender whose distinct events can be byte-identical (a bare ``ping``, a
     heartbeat) must be configured with an id;
   - an empty body carries nothing to tell a repeat from a new event, so each one is
     a new event (``unidentified:<uuid>``): processed twice if the sender retries,
     never silently dropped (the bug seed 004's Google notifications met).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.adapters import transform
from hub.platform.errors import HubError, ValidationError
from hub.webhooks import signatures
from hub.webhooks.signatures import Headers, Scheme

MAX_EXTERNAL_ID = signatures.MAX_EXTERNAL_ID
MAX_EVENT_TYPE = 255
#: The endpoint config keys this module reads.
KEYS = ("event_id", "event_type")


@dataclass(frozen=True)
class Locator:
    """Where a value is in a request: a header (lower-case name) or a JMESPath
    expression into the JSON body."""

    header: str | None = None
    path: str | None = None

    def find(self, headers: Headers, payload: Any) -> str | None:
        """The value as text, or None when absent, empty or not a scalar."""
        if self.header is not None:
            return headers.get(self.header) or None
        try:
            found = transform.apply(self.path, payload)
        except HubError:  # a runtime JMESPath error on an unexpected body shape
            return None
        if found is None or isinstance(found, (dict, list)) or found == "":
            return None
        return str(found).lower() if isinstance(found, bool) else str(found)


@dataclass(frozen=True)
class Identity:
    """An endpoint's configured locators (None: the scheme's rule)."""

    event_id: Locator | None = None
    event_type: Locator | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Identity:
        """The locators in an endpoint's config. Raises ValidationError for a bad one."""
        return cls(*(_locator(key, config.get(key)) for key in KEYS))

    @property
    def reads_body(self) -> bool:
        return any(loc is not None and loc.path is not None
                   for loc in (self.event_id, self.event_type))


def _locator(key: str, raw: Any) -> Locator | None:
    if raw in (None, {}):
        return None
    if not isinstance(raw, Mapping) or len(raw) != 1 or not {"header", "path"} >= set(raw):
        raise ValidationError(f"{key} must be {{\"header\": NAME}} or {{\"path\": JMESPATH}}")
    header, path = raw.get("header"), raw.get("path")
    if header is not None:
        name = str(header).strip().lower()
        if not name or any(c in name for c in " :\r\n\0"):
            raise ValidationError(f"{key}.header must be a plain HTTP header name")
        return Locator(header=name)
    transform.compile_expression(str(path))  # ValidationError when malformed
    return Locator(path=str(path))


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``event_id`` / ``event_type`` entries of an endpoint config, checked and
    normalised (header names lower-case; unset ones dropped). Raises ValidationError."""
    identity = Identity.from_config(config)
    cleaned: dict[str, Any] = {}
    for key in KEYS:
        locator = getattr(identity, key)
        if locator is not None:
            cleaned[key] = ({"header": locator.header} if locator.header is not None
                            else {"path": locator.path})
    return cleaned


def body_for(identity: Identity, payload: Any, body: bytes) -> Any:
    """The JSON a body locator reads: the scheme's parsed payload, or the body parsed
    here when the scheme left it opaque (no JSON content type); None if not JSON."""
    if payload is not None or not identity.reads_body or not body:
        return payload
    try:
        return signatures.parse_json(body, {})
    except HubError:
        return None


def event_type(identity: Identity, scheme: Scheme, headers: Headers,
               payload: Any) -> str | None:
    """The event's type: configured, else the scheme's (``customer.created``,
    ``message``, ``update``...), else None (stored as ``unknown``)."""
    found = identity.event_type.find(headers, payload) if identity.event_type else None
    found = found or scheme.event_type(headers, payload)
    return found[:MAX_EVENT_TYPE] if found else None


def external_id(identity: Identity, scheme: Scheme, headers: Headers, payload: Any,
                body: bytes) -> str:
    """The event's id: configured, else the scheme's, else the body's SHA-256, else (an
    empty body) a new id of its own. An id longer than the column is stored hashed."""
    found = identity.event_id.find(headers, payload) if identity.event_id else None
    found = found or scheme.event_id(headers, payload)
    if found:
        return found if len(found) <= MAX_EXTERNAL_ID else \
            "sha256-id:" + hashlib.sha256(found.encode("utf-8", "replace")).hexdigest()
    if not body:
        return f"unidentified:{uuid.uuid4()}"
    return "sha256:" + hashlib.sha256(body).hexdigest()
