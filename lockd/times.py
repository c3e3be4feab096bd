"""Moments and durations people write: ``--since``, ``--until``, ``--exclude-newer``,
``--expires``, ``since=`` of the API, ``LOCKD_SERVE_STALE_AFTER`` (pure).

One parser for all of them. A duration is a number and a unit (``90s``, ``15m``,
``24h``, ``7d``, ``2w``, ``3 days``, or a sum: ``1d12h``), never zero and at most
100 years; as a moment it counts back from now. A moment is an ISO date
(``2026-01-31``: midnight UTC, or the next midnight for the end of a window) or
an ISO time (``2026-01-31T02:00Z``; without an offset, UTC). Messages name the
flag (``--since``) or the query parameter (``since``) that was given.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from .errors import UsageError, excerpt

__all__ = ["format_time", "parse_duration", "parse_time"]

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_PART = re.compile(r"(\d{1,12})\s*([a-z]+)\s*")
_LONGEST = 100 * 365 * 86400
_DURATIONS = "90m, 24h, 7d, 2w, 1d12h"


def parse_duration(text: str, what: str) -> timedelta:
    """``text`` as a positive duration; ``UsageError`` naming ``what`` otherwise."""
    seconds = _seconds(text)
    if seconds is None:
        raise UsageError(
            f"{_named(what)} {excerpt(text)} is not a duration.",
            hint=f"Write a number with a unit, for example {_example(what, '24h')} ({_DURATIONS}).",
        )
    _check_range(seconds, text, what)
    return timedelta(seconds=seconds)


def parse_time(text: str, what: str, *, now: datetime | None = None, end: bool = False) -> datetime:
    """``text`` as an aware UTC moment: a duration before ``now``, an ISO date or time.

    With ``end``, a bare date means the end of that day (the next midnight): the
    ``--until`` of a window includes the day it names.
    """
    seconds = _seconds(text)
    if seconds is not None:
        _check_range(seconds, text, what)
        return (now or datetime.now(UTC)).astimezone(UTC) - timedelta(seconds=seconds)
    stripped = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stripped):
            day = date.fromisoformat(stripped) + timedelta(days=1 if end else 0)
            return datetime.combine(day, datetime.min.time(), UTC)
        moment = datetime.fromisoformat(stripped.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{_named(what)} {excerpt(text)} is not a date, a time or a duration.",
            hint=f"Write a duration ago ({_example(what, '7d')}; {_DURATIONS}), an ISO date "
            f"({_example(what, '2026-01-31')}) or an ISO time in UTC "
            f"({_example(what, '2026-01-31T02:00Z')}).",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """``2026-01-31T02:00:00Z``: how lockd records a moment."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(text: str) -> int | None:
    """The seconds a duration stands for, or ``None`` when ``text`` is not one."""
    compact = text.strip().lower()
    parts = _PART.findall(compact)
    if not parts or _PART.sub("", compact) or any(unit not in _UNITS for _, unit in parts):
        return None
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def _check_range(seconds: int, text: str, what: str) -> None:
    if 0 < seconds <= _LONGEST:
        return
    raise UsageError(
        f"{_named(what)} {excerpt(text)} is "
        + ("an empty period." if seconds == 0 else "longer than 100 years."),
        hint=f"Give between 1s and 100 years, for example {_example(what, '7d')}.",
    )


def _named(what: str) -> str:
    """``--since`` for a flag, ``Query parameter since`` for the API's, a variable as is."""
    return what if what.startswith("--") or what.isupper() else f"Query parameter {what}"


def _example(what: str, value: str) -> str:
    if what.startswith("--"):
        return f"{what} {value}"
    return f"{what}={value}"
