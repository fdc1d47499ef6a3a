from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from desk.domain.hours import describe, is_open, next_closing, next_opening, parse_callback_time
from desk.domain.policy import Hours

PARIS = ZoneInfo("Europe/Paris")
WORKDAY = ((9 * 60, 12 * 60 + 30), (13 * 60 + 30, 18 * 60))  # 09:00-12:30, 13:30-18:00
CLOSED: tuple[tuple[int, int], ...] = ()


def week(*days: tuple[tuple[int, int], ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
    return (*days, *(CLOSED,) * (7 - len(days)))


def office(timezone: str = "Europe/Paris", holidays: frozenset[str] = frozenset()) -> Hours:
    return Hours(timezone=timezone, weekly=week(*(WORKDAY,) * 5), holidays=holidays)


def local(text: str, zone: str = "Europe/Paris") -> datetime:
    """A wall-clock time ("2026-12-02 09:00") in `zone`, as the UTC instant the functions answer with."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- is_open ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ("2026-12-02 08:59:59", False),
        ("2026-12-02 09:00", True),  # start inclusive
        ("2026-12-02 12:29:59", True),
        ("2026-12-02 12:30", False),  # end exclusive: lunch
        ("2026-12-02 13:29", False),
        ("2026-12-02 13:30", True),
        ("2026-12-02 17:59:59", True),
        ("2026-12-02 18:00", False),
        ("2026-12-05 10:00", False),  # Saturday
        ("2026-12-06 10:00", False),  # Sunday
    ],
)
def test_open_from_start_inclusive_to_end_exclusive(wall: str, expected: bool) -> None:
    assert is_open(office(), local(wall)) is expected


def test_a_holiday_closes_the_whole_day() -> None:
    hours = office(holidays=frozenset({"2026-12-25"}))
    assert not is_open(hours, local("2026-12-25 10:00"))
    assert is_open(hours, local("2026-12-24 10:00"))
    assert is_open(hours, local("2026-12-28 10:00"))
    assert is_open(office(), local("2026-12-25 10:00"))


def test_no_hours_is_always_open() -> None:
    at = utc("2026-12-06 03:00")
    assert is_open(None, at)
    assert next_opening(None, at) == at
    assert next_closing(None, at) is None


def test_a_naive_datetime_is_refused() -> None:
    naive = datetime(2026, 12, 2, 10, 0)
    with pytest.raises(ValueError, match="no time zone"):
        is_open(office(), naive)
    with pytest.raises(ValueError, match="no time zone"):
        next_opening(None, naive)
    with pytest.raises(ValueError, match="no time zone"):
        parse_callback_time("asap", now=naive, hours=None)


def test_the_local_date_counts_not_the_utc_date() -> None:
    tokyo = office("Asia/Tokyo", holidays=frozenset({"2026-12-07"}))
    # Monday 7 December 09:00 in Tokyo is still Sunday in UTC; Tokyo's Monday is the holiday.
    assert utc("2026-12-07 00:00") == local("2026-12-07 09:00", "Asia/Tokyo")
    assert not is_open(tokyo, utc("2026-12-07 00:00"))
    assert is_open(office("Asia/Tokyo"), utc("2026-12-07 00:00"))
    assert not is_open(office("Asia/Tokyo"), utc("2026-12-06 23:59"))  # Monday 08:59 in Tokyo
    # Monday 08:30 in Auckland (NZDT, UTC+13) is Sunday 19:30 UTC.
    auckland = office("Pacific/Auckland")
    assert next_opening(auckland, utc("2026-12-06 19:30")) == utc("2026-12-06 20:00")
    # Friday 22:30 in Los Angeles is Saturday 06:30 UTC.
    evenings = Hours("America/Los_Angeles", week(CLOSED, CLOSED, CLOSED, CLOSED, ((17 * 60, 23 * 60),)))
    assert is_open(evenings, utc("2026-12-05 06:30"))
    assert not is_open(evenings, utc("2026-12-05 07:00"))
    assert next_closing(evenings, utc("2026-12-05 06:30")) == utc("2026-12-05 07:00")


# --- next_opening -------------------------------------------------------------------------------------------------


def test_next_opening_is_now_when_open_and_after_lunch_when_at_lunch() -> None:
    assert next_opening(office(), local("2026-12-02 10:00")) == local("2026-12-02 10:00")
    assert next_opening(office(), local("2026-12-02 12:30")) == local("2026-12-02 13:30")
    assert next_opening(office(), local("2026-12-02 07:00")) == local("2026-12-02 09:00")
    assert next_opening(office(), local("2026-12-02 07:00")).tzinfo is UTC  # type: ignore[union-attr]


def test_next_opening_across_a_weekend() -> None:
    assert next_opening(office(), local("2026-12-04 18:00")) == local("2026-12-07 09:00")
    assert next_opening(office(), local("2026-12-05 23:00")) == local("2026-12-07 09:00")


def test_next_opening_across_a_holiday_fortnight() -> None:
    closed = frozenset(f"2026-12-{day}" for day in range(21, 32)) | {"2027-01-01"}
    assert next_opening(office(holidays=closed), local("2026-12-18 18:00")) == local("2027-01-04 09:00")


def test_never_open_hours_never_open() -> None:
    never = Hours("Europe/Paris", week())
    at = local("2026-12-02 10:00")
    assert not is_open(never, at)
    assert next_opening(never, at) is None
    assert next_closing(never, at) is None
    assert parse_callback_time("asap", now=at, hours=never) is None


def test_next_opening_gives_up_beyond_the_lookahead() -> None:
    mondays = frozenset((datetime(2026, 12, 7) + timedelta(weeks=n)).date().isoformat() for n in range(70))
    hours = Hours("Europe/Paris", week(WORKDAY), holidays=mondays)
    assert next_opening(hours, local("2026-12-02 10:00")) is None
    fewer = Hours("Europe/Paris", week(WORKDAY), holidays=frozenset(sorted(mondays)[:50]))
    assert next_opening(fewer, local("2026-12-02 10:00")) == local("2027-11-22 09:00")


# --- next_closing -------------------------------------------------------------------------------------------------


def test_next_closing_ends_the_current_range() -> None:
    assert next_closing(office(), local("2026-12-02 10:00")) == local("2026-12-02 12:30")
    assert next_closing(office(), local("2026-12-02 14:00")) == local("2026-12-02 18:00")
    assert next_closing(office(), local("2026-12-02 12:30")) is None  # closed: no current period


def test_next_closing_runs_through_a_midnight_join() -> None:
    weekend = Hours("Europe/Paris", week(CLOSED, CLOSED, CLOSED, CLOSED, ((18 * 60, 1440),), ((0, 1440),), ((0, 720),)))
    assert next_closing(weekend, local("2026-12-04 20:00")) == local("2026-12-06 12:00")
    assert is_open(weekend, local("2026-12-05 00:00"))
    assert not is_open(weekend, local("2026-12-06 12:00"))


def test_always_open_hours_never_close() -> None:
    always = Hours("Europe/Paris", week(*(((0, 1440),),) * 7))
    assert next_closing(always, local("2026-12-02 10:00")) is None
    assert next_opening(always, local("2026-12-02 10:00")) == local("2026-12-02 10:00")


# --- daylight saving time -----------------------------------------------------------------------------------------

SUNDAYS = week(*(CLOSED,) * 6, ((9 * 60, 17 * 60),))


@pytest.mark.parametrize(
    ("zone", "day", "opens", "closes"),
    [
        ("Europe/Paris", "2026-03-22", "2026-03-22 08:00", "2026-03-22 16:00"),  # CET
        ("Europe/Paris", "2026-03-29", "2026-03-29 07:00", "2026-03-29 15:00"),  # spring forward: CEST
        ("Europe/Paris", "2026-10-25", "2026-10-25 08:00", "2026-10-25 16:00"),  # fall back: CET again
        ("America/New_York", "2026-03-08", "2026-03-08 13:00", "2026-03-08 21:00"),  # EDT from that day
        ("America/New_York", "2026-11-01", "2026-11-01 14:00", "2026-11-01 22:00"),  # EST from that day
    ],
)
def test_ranges_keep_their_wall_clock_on_the_days_clocks_change(zone: str, day: str, opens: str, closes: str) -> None:
    hours = Hours(zone, SUNDAYS)
    assert next_opening(hours, local(f"{day} 00:00", zone)) == utc(opens)
    assert next_closing(hours, utc(opens)) == utc(closes)


def test_a_time_in_the_spring_forward_gap_opens_when_the_gap_ends() -> None:
    # Paris, 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never happens.
    hours = Hours("Europe/Paris", week(*(CLOSED,) * 6, ((150, 300),)))  # Sunday 02:30-05:00
    assert next_opening(hours, utc("2026-03-28 23:00")) == utc("2026-03-29 01:00")
    assert not is_open(hours, utc("2026-03-29 00:59"))
    assert next_closing(hours, utc("2026-03-29 01:00")) == utc("2026-03-29 03:00")  # 05:00 CEST


def test_a_range_wholly_inside_the_gap_never_opens() -> None:
    # New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:00-02:30 is not on any clock that day.
    hours = Hours("America/New_York", week(*(CLOSED,) * 6, ((120, 150),)))
    assert next_opening(hours, utc("2026-03-08 05:00")) == local("2026-03-15 02:00", "America/New_York")


def test_an_ambiguous_time_uses_its_first_occurrence() -> None:
    # Paris, 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice (00:30 and 01:30 UTC).
    hours = Hours("Europe/Paris", week(*(CLOSED,) * 6, ((150, 240),)))  # Sunday 02:30-04:00
    assert next_opening(hours, utc("2026-10-24 22:00")) == utc("2026-10-25 00:30")
    assert next_closing(hours, utc("2026-10-25 00:30")) == utc("2026-10-25 03:00")  # 04:00 CET
    # New York, 1 November 2026: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    early = Hours("America/New_York", week(*(CLOSED,) * 6, ((90, 180),)))  # Sunday 01:30-03:00
    assert next_opening(early, utc("2026-11-01 04:00")) == utc("2026-11-01 05:30")
    assert is_open(early, utc("2026-11-01 06:30"))
    assert next_closing(early, utc("2026-11-01 06:30")) == utc("2026-11-01 08:00")


# --- describe -----------------------------------------------------------------------------------------------------


def test_describe_names_the_day_in_the_hours_zone() -> None:
    assert describe(local("2026-12-02 09:00"), office()) == "Wednesday 2 December at 09:00 (Europe/Paris)"
    assert describe(utc("2026-12-06 23:30"), office("Asia/Tokyo")) == "Monday 7 December at 08:30 (Asia/Tokyo)"
    assert describe(utc("2026-12-06 23:30"), None) == "Sunday 6 December at 23:30 (UTC)"


# --- parse_callback_time ------------------------------------------------------------------------------------------

NOW = local("2026-12-02 10:00")  # a Wednesday, open


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("any time", "2026-12-02 10:00"),  # open now: now
        ("Anytime", "2026-12-02 10:00"),
        ("whenever", "2026-12-02 10:00"),
        ("ASAP please", "2026-12-02 10:00"),
        ("as soon as possible", "2026-12-02 10:00"),
        ("now", "2026-12-02 10:00"),
        ("14:30", "2026-12-02 14:30"),
        ("9:15", "2026-12-03 09:15"),  # passed today: tomorrow
        ("10:00", "2026-12-03 10:00"),  # now is not after now
        ("9am", "2026-12-03 09:00"),
        ("4 pm", "2026-12-02 16:00"),
        ("9.30pm", "2026-12-02 21:30"),  # outside the hours, kept
        ("12am", "2026-12-03 00:00"),
        ("9:30 a.m.", "2026-12-03 09:30"),
        ("14h", "2026-12-02 14:00"),
        ("14h30", "2026-12-02 14:30"),
        ("tomorrow 10:00", "2026-12-03 10:00"),
        ("Tomorrow at 10am", "2026-12-03 10:00"),
        ("call me tomorrow at 10am please", "2026-12-03 10:00"),
        ("tomorrow morning", "2026-12-03 09:00"),
        ("tomorrow afternoon", "2026-12-03 14:00"),
        ("tomorrow at 8 in the evening", "2026-12-03 20:00"),
        ("tomorrow at 10", "2026-12-03 10:00"),
        ("day after tomorrow", "2026-12-04 09:00"),
        ("this afternoon", "2026-12-02 14:00"),
        ("this evening", "2026-12-02 18:00"),
        ("tonight", "2026-12-02 18:00"),
        ("noon", "2026-12-02 12:00"),
        ("monday 9am", "2026-12-07 09:00"),
        ("on Friday at 14:30", "2026-12-04 14:30"),
        ("next monday", "2026-12-07 09:00"),
        ("thursday", "2026-12-03 09:00"),
        ("wednesday", "2026-12-09 09:00"),  # today's weekday alone: next week's
        ("wednesday 9am", "2026-12-09 09:00"),  # today's weekday, time already past
        ("wednesday at 15:00", "2026-12-02 15:00"),  # today's weekday, later today
        ("2026-12-03 09:00", "2026-12-03 09:00"),
        ("2026-12-03T09:00", "2026-12-03 09:00"),
        ("2026-12-03", "2026-12-03 09:00"),
        ("2026-12-03 at 2pm", "2026-12-03 14:00"),
        ("in 2 hours", "2026-12-02 12:00"),
        ("in 30 minutes", "2026-12-02 10:30"),
        ("in 1 hour", "2026-12-02 11:00"),
        ("in an hour", "2026-12-02 11:00"),
        ("in half an hour", "2026-12-02 10:30"),
        ("any time after 3pm", "2026-12-02 15:00"),  # a named time beats "any time"
        ("2027-02-28 10:00", "2027-02-28 10:00"),  # 88 days ahead
        # Not understood, ambiguous or out of range: None.
        ("", None),
        ("hello, I have a question", None),
        ("not now", None),
        ("03/12 09:00", None),  # 3 December or 12 March?
        ("12.03.2026", None),
        ("9.30", None),
        ("at 3", None),  # 03:00 or 15:00?
        ("25:00", None),
        ("13pm", None),
        ("9:75", None),
        ("2026-02-30", None),
        ("2026-12-01 10:00", None),  # past
        ("this morning", None),  # 09:00 has passed
        ("today at 9am", None),
        ("2027-03-05", None),  # more than 90 days ahead
        ("in 3000 hours", None),
        ("in 0 minutes", None),
        ("monday or tuesday", None),
        ("10:00 or 11:00", None),
        ("tomorrow in 2 hours", None),
        ("in 2h30", None),  # not 02:30
        ("friday 2026-12-03", None),  # 3 December is a Thursday
        ("on the 5th", None),
    ],
)
def test_parse_callback_time(text: str, expected: str | None) -> None:
    assert parse_callback_time(text, now=NOW, hours=office()) == (None if expected is None else local(expected))


def test_asap_while_closed_is_the_next_opening() -> None:
    friday_evening = local("2026-12-04 19:00")
    assert parse_callback_time("asap", now=friday_evening, hours=office()) == local("2026-12-07 09:00")
    assert parse_callback_time("whenever", now=local("2026-12-02 12:45"), hours=office()) == local("2026-12-02 13:30")
    # A named time is kept although the desk is closed then: the caller decides.
    assert parse_callback_time("saturday 10am", now=friday_evening, hours=office()) == local("2026-12-05 10:00")


def test_without_hours_times_are_read_in_utc() -> None:
    now = utc("2026-12-02 10:00")
    assert parse_callback_time("asap", now=now, hours=None) == now
    assert parse_callback_time("14:30", now=now, hours=None) == utc("2026-12-02 14:30")
    assert parse_callback_time("tomorrow morning", now=now, hours=None) == utc("2026-12-03 09:00")


def test_times_are_read_in_the_hours_zone() -> None:
    # 23:30 UTC on Sunday is already Monday 08:30 in Tokyo: "9am" is in half an hour, "tomorrow" is Tuesday.
    now = utc("2026-12-06 23:30")
    tokyo = office("Asia/Tokyo")
    assert parse_callback_time("9am", now=now, hours=tokyo) == utc("2026-12-07 00:00")
    assert parse_callback_time("tomorrow", now=now, hours=tokyo) == local("2026-12-08 09:00", "Asia/Tokyo")
    assert parse_callback_time("monday 10:00", now=now, hours=tokyo) == utc("2026-12-07 01:00")


def test_a_callback_on_the_day_clocks_change_keeps_its_wall_clock() -> None:
    saturday = local("2026-03-28 12:00")
    assert parse_callback_time("tomorrow 10:00", now=saturday, hours=office()) == utc("2026-03-29 08:00")
    assert parse_callback_time("tomorrow 2:30am", now=saturday, hours=office()) == utc("2026-03-29 01:00")
