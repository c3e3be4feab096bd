"""One parser for the times and durations people write (lockd.times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lockd.errors import UsageError
from lockd.times import format_time, parse_duration, parse_time

NOW = datetime(2026, 3, 4, 6, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", datetime(2026, 2, 25, 6, 45, tzinfo=UTC)),
        ("3 days", datetime(2026, 3, 1, 6, 45, tzinfo=UTC)),
        ("1d12h", datetime(2026, 3, 2, 18, 45, tzinfo=UTC)),
        ("2 weeks", datetime(2026, 2, 18, 6, 45, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T02:00Z", datetime(2026, 3, 1, 2, tzinfo=UTC)),
        ("2026-03-01T02:00:00+02:00", datetime(2026, 3, 1, 0, tzinfo=UTC)),
        ("2026-03-01T02:00", datetime(2026, 3, 1, 2, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_times_and_durations_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, "--since", now=NOW) == expected


def test_a_date_as_the_end_of_a_window_includes_that_day() -> None:
    assert parse_time("2026-03-01", "--until", end=True) == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0h", "'0h' is an empty period"),
        ("0d", "'0d' is an empty period"),
        ("1h 2x", "not a date"),
        ("200000w", "longer than 100 years"),
        ("yesterday", "'yesterday' is not a date, a time or a duration"),
        ("3 months", "not a date"),
        ("12", "not a date"),
        ("-1h", "not a date"),
        ("2026-02-30", "not a date"),
    ],
)
def test_what_is_refused_and_how_the_flag_or_parameter_is_named(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words) as flag:
        parse_time(text, "--since", now=NOW)
    assert flag.value.render().startswith("--since ") and "--since 7d" in flag.value.render()
    with pytest.raises(UsageError, match=words) as query:
        parse_time(text, "since", now=NOW)
    assert query.value.render().startswith("Query parameter since ")
    assert "--since" not in query.value.render()


def test_durations_share_the_rule_zero_included() -> None:
    assert parse_duration("90d", "--expires") == timedelta(days=90)
    assert parse_duration("1 hour 30 minutes", "--expires") == timedelta(minutes=90)
    for zero in ("0d", "0h", "0s"):
        with pytest.raises(UsageError, match="empty period"):
            parse_duration(zero, "--expires")
    assert format_time(datetime(2026, 3, 1, 2, tzinfo=UTC)) == "2026-03-01T02:00:00Z"
