"""Opening hours and callback times: the deferral tier's clock. Pure.

`Hours` are wall-clock ranges in the policy's time zone; every answer here is an aware UTC datetime. Ranges turn
into instants one local day at a time, so "09:00-17:00" stays 09:00-17:00 on the wall on the days clocks change:
a wall time that does not exist (spring forward) becomes the first instant after the gap, and an ambiguous one
(fall back) its first occurrence (fold=0). Ranges that touch, such as a day open until 24:00 and the next from
00:00, form one open period. No `Hours` at all means always open, in UTC.

`parse_callback_time` reads the customer's answer to the deferral tier's "when would suit you?". It reads little
and refuses the rest (None, so the caller can ask again or fall back to `requeue_after_s`): numbers it does not
understand, two different days or times, ambiguous day/month dates ("03/12") and bare hours 1 to 7 ("at 3":
morning or afternoon?). A time outside the hours is kept: the caller decides whether to move it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo

from desk.domain.policy import Hours

__all__ = [
    "CALLBACK_HORIZON_DAYS",
    "LOOKAHEAD_DAYS",
    "describe",
    "is_open",
    "next_closing",
    "next_opening",
    "parse_callback_time",
]

LOOKAHEAD_DAYS = 400  # holidays may close whole weeks; beyond this an opening (or closing) counts as never
CALLBACK_HORIZON_DAYS = 90  # a callback further ahead is more likely a misreading than a wish

MORNING = time(9)
AFTERNOON = time(14)
EVENING = time(18)
_PARTS = {"morning": MORNING, "afternoon": AFTERNOON, "evening": EVENING, "tonight": EVENING}

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

Period = tuple[datetime, datetime]  # [start, end) in UTC
_T = TypeVar("_T")


def _zone(hours: Hours | None) -> tzinfo:
    return UTC if hours is None else ZoneInfo(hours.timezone)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no time zone")
    return at


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone`."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a spring-forward gap fold=0 reads the wall time with the offset from before the jump, which lands after
    # the gap by as much as the wall time is into it; the jump itself, the first valid instant, lies in between.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _at_minute(day: date, minute: int, zone: tzinfo) -> datetime:
    extra, minute = divmod(minute, 1440)  # 1440 (24:00) is the next day's midnight
    return _instant(datetime.combine(day + timedelta(days=extra), time(minute // 60, minute % 60)), zone)


def _periods(hours: Hours, zone: tzinfo, first: date, days: int) -> Iterator[Period]:
    """The open periods of `days` local days from `first`, in order, touching ranges joined."""
    pending: Period | None = None
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day.isoformat() in hours.holidays:
            continue
        for start_minute, end_minute in sorted(hours.weekly[day.weekday()]):
            start, end = _at_minute(day, start_minute, zone), _at_minute(day, end_minute, zone)
            if start >= end:  # the whole range fell into a spring-forward gap
                continue
            if pending is not None and start <= pending[1]:
                pending = (pending[0], max(pending[1], end))
                continue
            if pending is not None:
                yield pending
            pending = (start, end)
    if pending is not None:
        yield pending


def _yesterday(at: datetime, zone: tzinfo) -> date:
    # Starting a day early catches a period that began before `at`'s local day and is still running.
    return at.astimezone(zone).date() - timedelta(days=1)


def is_open(hours: Hours | None, at: datetime) -> bool:
    _aware(at)
    if hours is None:
        return True
    zone = _zone(hours)
    return any(start <= at < end for start, end in _periods(hours, zone, _yesterday(at, zone), 3))


def next_opening(hours: Hours | None, at: datetime) -> datetime | None:
    """`at` itself when open, else the next moment the desk opens; None when it does not within LOOKAHEAD_DAYS."""
    _aware(at)
    if hours is None:
        return at.astimezone(UTC)
    zone = _zone(hours)
    for start, end in _periods(hours, zone, _yesterday(at, zone), LOOKAHEAD_DAYS):
        if end > at:
            return max(start, at).astimezone(UTC)
    return None


def next_closing(hours: Hours | None, at: datetime) -> datetime | None:
    """When the open period `at` falls in ends; None when closed at `at`, or open beyond LOOKAHEAD_DAYS (always)."""
    _aware(at)
    if hours is None:
        return None
    zone = _zone(hours)
    first = _yesterday(at, zone)
    horizon = _at_minute(first + timedelta(days=LOOKAHEAD_DAYS), 0, zone)
    for start, end in _periods(hours, zone, first, LOOKAHEAD_DAYS):
        if start > at:
            return None
        if at < end:
            return None if end >= horizon else end
    return None


def describe(at: datetime, hours: Hours | None) -> str:
    """E.g. "Wednesday 2 December at 09:00 (Europe/Paris)": stored and read later, so never "today"."""
    local = _aware(at).astimezone(_zone(hours))
    label = "UTC" if hours is None else hours.timezone
    weekday = _WEEKDAYS[local.weekday()].capitalize()
    return f"{weekday} {local.day} {_MONTHS[local.month - 1]} at {local:%H:%M} ({label})"


# --- Callback times -----------------------------------------------------------------------------------------------


class _Unclear(Exception):
    """The answer says something, but not one clear time."""


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})(?:t(?=\d)|\b)")
_RELATIVE = re.compile(r"\bin\s+(\d{1,4}|an?|one|half an?)\s*(hours?|hrs?|h|minutes?|mins?)\b")
_RELATIVE_MIXED = re.compile(r"\bin\s+\d{1,2}\s*h\s*\d{2}\b")  # "in 2h30": not a relative we read, nor 02:30
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?:\s*(am|pm))?\b")  # 9:30, 09:00, 9:30pm
_MERIDIEM = re.compile(r"\b(\d{1,2})(?:\.(\d{2}))?\s*(am|pm)\b")  # 9am, 9 am, 9.30pm
_FRENCH = re.compile(r"\b(\d{1,2})h(\d{2})?\b")  # 14h, 14h30
_BARE_HOUR = re.compile(r"\b(?:at|around|about|from|after)\s+(\d{1,2})\b")
_NOON = re.compile(r"\b(?:noon|midday)\b")
_PART = re.compile(r"\b(?:(this)\s+)?(morning|afternoon|evening)\b|\b(tonight)\b")
_DAY_WORD = re.compile(r"\b(?:(?:the\s+)?day\s+after\s+tomorrow|tomorrow|today)\b")
_WEEKDAY = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")\b")
_ASAP = re.compile(r"\b(?:any\s*time|whenever|asap|as\s+soon\s+as\s+possible|now|right\s+away|immediately)\b")
_NOT_NOW = re.compile(r"\bnot\s+(?:right\s+)?now\b")


def _take(pattern: re.Pattern[str], text: str) -> tuple[list[re.Match[str]], str]:
    """The matches of `pattern`, and `text` with them blanked out so no later pattern reads them again."""
    found = list(pattern.finditer(text))
    for match in found:
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]
    return found, text


def _one(values: set[_T]) -> _T | None:
    if len(values) > 1:
        raise _Unclear
    return next(iter(values), None)


def _clock(hour: int, minute: int, meridiem: str | None) -> time:
    if meridiem is not None:
        if not 1 <= hour <= 12:
            raise _Unclear
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise _Unclear
    return time(hour, minute)


def _read_times(text: str) -> tuple[time | None, bool, str]:
    """The time of day the text names (a clock before a part of day: "tomorrow morning at 10am" is 10:00), and
    whether it also says today ("this afternoon", "tonight")."""
    times: set[time] = set()
    found, text = _take(_CLOCK, text)
    times.update(_clock(int(m[1]), int(m[2]), m[3]) for m in found)
    found, text = _take(_MERIDIEM, text)
    times.update(_clock(int(m[1]), int(m[2] or 0), m[3]) for m in found)
    found, text = _take(_FRENCH, text)
    times.update(_clock(int(m[1]), int(m[2] or 0), None) for m in found)
    found, text = _take(_NOON, text)
    times.update(time(12) for _ in found)
    parts, text = _take(_PART, text)
    part = _one({_PARTS[m[2] or m[3]] for m in parts})
    bare, text = _take(_BARE_HOUR, text)
    for match in bare:
        hour = int(match[1])
        if part in (AFTERNOON, EVENING) and hour < 12:
            hour += 12
        elif part is None and 1 <= hour <= 7:
            raise _Unclear  # "at 3": a reader would ask whether that is morning or afternoon
        times.add(_clock(hour, 0, None))
    return _one(times) or part, any(m[1] or m[3] for m in parts), text


def _read_dates(text: str) -> tuple[set[date], str]:
    days: set[date] = set()
    found, text = _take(_ISO_DATE, text)
    for match in found:
        try:
            days.add(date(int(match[1]), int(match[2]), int(match[3])))
        except ValueError:
            raise _Unclear from None
    return days, text


def _read_days(text: str, today: date) -> tuple[set[date], set[int], str]:
    days: set[date] = set()
    found, text = _take(_DAY_WORD, text)
    for match in found:
        word = match[0]
        days.add(today + timedelta(days=2 if "after" in word else 1 if word == "tomorrow" else 0))
    found, text = _take(_WEEKDAY, text)
    return days, {_WEEKDAYS.index(m[1]) for m in found}, text


def _relative(match: re.Match[str]) -> timedelta:
    word = match[1]
    amount = float(word) if word.isdigit() else 0.5 if word.startswith("half") else 1.0
    return timedelta(hours=amount) if match[2].startswith("h") else timedelta(minutes=amount)


def _read(text: str, now: datetime, hours: Hours | None) -> tuple[datetime | None, bool]:
    """The time `text` names, if any, and whether it asks for the soonest possible ("asap", "any time")."""
    zone = _zone(hours)
    local_now = now.astimezone(zone)
    text = re.sub(r"\b([ap])\.m\b\.?", r"\1m", " ".join(text.casefold().split()))
    if _RELATIVE_MIXED.search(text):
        raise _Unclear
    relatives, text = _take(_RELATIVE, text)
    dates, text = _read_dates(text)  # before the clock: "2026-12-03T09:00" has no word boundary before 09
    clock, says_today, text = _read_times(text)
    days, weekdays, text = _read_days(text, local_now.date())
    days |= dates
    if re.search(r"\d", text):
        raise _Unclear  # a number nobody read: a date form we do not take ("03/12"), or a typo
    if says_today:
        days.add(local_now.date())
    if relatives:
        if len(relatives) > 1 or clock is not None or days or weekdays:
            raise _Unclear
        return now.astimezone(UTC) + _relative(relatives[0]), False
    for weekday in weekdays:
        day = local_now.date() + timedelta(days=(weekday - local_now.weekday()) % 7)
        if day == local_now.date() and (clock is None or _instant(datetime.combine(day, clock), zone) <= now):
            day += timedelta(days=7)  # "monday", said on a Monday, is next week's unless a later time today is named
        days.add(day)
    named = _one(days)
    if named is not None:
        return _instant(datetime.combine(named, clock or MORNING), zone), False
    if clock is not None:
        today = _instant(datetime.combine(local_now.date(), clock), zone)
        tomorrow = _instant(datetime.combine(local_now.date() + timedelta(days=1), clock), zone)
        return (today if today > now else tomorrow), False
    return None, bool(_ASAP.search(_NOT_NOW.sub(" ", text)))


def parse_callback_time(text: str, *, now: datetime, hours: Hours | None) -> datetime | None:
    """The callback time `text` asks for, in UTC, read in the hours' time zone; None when not understood.

    A named time is strictly after `now` and at most CALLBACK_HORIZON_DAYS ahead, else None; it may fall outside
    the hours (the caller decides). "asap", "any time" and the like answer the next opening: `now` when open.
    """
    _aware(now)
    try:
        when, soonest = _read(text, now, hours)
    except _Unclear:
        return None
    if soonest:
        return next_opening(hours, now)
    if when is None or when <= now or when - now > timedelta(days=CALLBACK_HORIZON_DAYS):
        return None
    return when
