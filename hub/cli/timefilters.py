"""``--since`` / ``--until`` values: an ISO 8601 time or an age such as ``30m``, ``2h``, ``7d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(_ctx: click.Context | None, _param: click.Parameter | None,
               value: str | None) -> datetime | None:
    """A timezone-aware datetime (UTC when none is given). Raises click.BadParameter."""
    if value is None:
        return None
    age = _AGE.match(value.strip())
    if age:
        delta = timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
        return datetime.now(UTC) - delta
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 time or an age like 30m, 2h, 7d") \
            from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def time_options(func):
    """``--since`` and ``--until`` on a command."""
    func = click.option("--until", callback=parse_when,
                        help="Only before this time (ISO 8601, or an age: 30m, 2h, 7d).")(func)
    return click.option("--since", callback=parse_when,
                        help="Only from this time on (ISO 8601, or an age: 30m, 2h, 7d).")(func)
