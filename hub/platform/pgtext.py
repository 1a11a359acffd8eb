"""Text PostgreSQL can hold: what input is checked against before it reaches a statement.

A ``text`` or ``jsonb`` value must be valid UTF-8 without NUL: PostgreSQL refuses
``\\x00`` in text (and ``\\u0000`` in jsonb), and psycopg cannot even encode a lone
UTF-16 surrogate (``"\\ud800"``, which ``json.loads`` happily returns for a
``"\\ud800"`` escape), raising ``UnicodeEncodeError`` while it builds the statement.
Checking at the door turns both into a clear 4xx for the sender alone instead of a
failed statement (issue 9, item 8: one such value used to fail a whole group-commit
batch of other tenants' events).
"""

from __future__ import annotations

from collections.abc import Iterable


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
