"""The server's timestamps as aware datetimes, whatever form they come in.

The backend writes ``"2026-02-01T01:59:00"`` (no zone), its docs show ``"...Z"``, call outputs
use ``"2026-02-01 00:00:00"``; a fraction of a second may have any number of digits. A naive
value is read as UTC. Python 3.10's ``datetime.fromisoformat`` takes neither ``Z`` nor every
fraction length, hence the pattern.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["epoch_of", "parse_datetime"]

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r" ?([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_datetime(text: object) -> datetime | None:
    """``text`` as an aware datetime (naive means UTC), or ``None`` if it is not one.

    >>> parse_datetime("2026-02-01T01:59:00")
    datetime.datetime(2026, 2, 1, 1, 59, tzinfo=datetime.timezone.utc)
    """
    if not isinstance(text, str):
        return None
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(sign * offset)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:  # month 13, February 30, hour 24, ...
        return None


def epoch_of(value: Any) -> float | None:
    """The epoch seconds of a server timestamp string (see :func:`parse_datetime`)."""
    when = parse_datetime(value)
    return None if when is None else when.timestamp()
