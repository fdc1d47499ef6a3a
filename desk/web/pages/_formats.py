"""How the supervisor and admin pages print times and durations (passed to their templates)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from desk.web.templating import parse_time

MINUTE_S = 60
HOUR_S = 3600


def when(value: str | datetime | None) -> str:
    """A moment as "2026-11-25 10:04 UTC"."""
    moment = parse_time(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    """ "45 s", "3 min 20 s", "2 h 5 min"; "n/a" when unknown."""
    if seconds is None:
        return "n/a"
    whole = max(0, round(seconds))
    if whole < MINUTE_S:
        return f"{whole} s"
    if whole < HOUR_S:
        minutes, rest = divmod(whole, MINUTE_S)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, HOUR_S)
    return f"{hours} h {rest // MINUTE_S} min" if rest >= MINUTE_S else f"{hours} h"


FORMATS: dict[str, Any] = {"when": when, "duration": duration}
