"""Text PostgreSQL can hold: what input is checked against before it reaches a statement.

A ``text`` or ``jsonb`` value must be valid UTF-8 without NUL: PostgreSQL refuses
``\\x00`` in text (and ``\\u0000`` in jsonb), and psycopg cannot even encode a lone
UTF-16 surrogate (``"\\ud800"``, which ``json.loads`` happily returns for a
``"\\ud800"`` escape), raising ``UnicodeEncodeError`` while it builds the statement.
Checking at the door turns both into a clear 4xx (or VALIDATION_ERROR) for the
sender alone instead of a failed statement: issue 9, item 8 (one such value used
to fail a whole group-commit batch of other tenants' events) and item 7 (a call
with a NUL in its tenant was retried five times as an internal error).

Records the hub must keep whatever they hold (dead letters) go through
:func:`sanitise` instead, which replaces only what cannot be stored and keeps the
rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: What replaces a character PostgreSQL refuses (Unicode's replacement character).
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: str) -> bool:
    """True when PostgreSQL can store ``value`` in a text or jsonb column."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def first_unstorable(values: Iterable[str | None]) -> str | None:
    """The first of ``values`` (None skipped) that :func:`storable` refuses, else None."""
    return next((v for v in values if v is not None and not storable(v)), None)


def refused_field(value: Any, name: str) -> str | None:
    """The dotted path of the first string (or object key) in ``value`` that PostgreSQL
    cannot store, e.g. ``params.json.note``; None when everything can be stored.

    ``value`` is a JSON-like value (str, Mapping, list/tuple, scalars). One cheap
    pass over the whole document first: a clean value is not walked.
    """
    try:
        dumped = json.dumps(value, ensure_ascii=False, default=str)
        dumped.encode("utf-8")
    except UnicodeEncodeError:
        return _walk(value, name)
    return _walk(value, name) if "\\u0000" in dumped else None


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return None if storable(value) else path
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not storable(str(key)):
                return f"{path} (an object key)"
            found = _walk(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _walk(item, f"{path}[{index}]")
            if found:
                return found
    return None


def sanitise_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    if storable(text):
        return text
    return _SURROGATE.sub(REPLACEMENT, text.replace("\x00", REPLACEMENT))


def sanitise(value: Any) -> Any:
    """A copy of the JSON-like ``value`` whose every string and key PostgreSQL can
    store (see :func:`sanitise_text`); other values are returned as they are."""
    if isinstance(value, str):
        return sanitise_text(value)
    if isinstance(value, Mapping):
        return {sanitise_text(str(k)): sanitise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitise(v) for v in value]
    return value
