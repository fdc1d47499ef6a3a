"""The Jinja2 environment of the pages and their fragments.

Autoescaping is on for every template and nothing user-supplied is ever marked safe: names, messages, notes,
summaries and recommended actions come from customers, AI agents and staff, and are shown as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from desk.domain.text import DISGUISES

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
MINUTE_S = 60
HOUR_S = 60 * MINUTE_S
DAY_S = 24 * HOUR_S


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def since(value: str | datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: "just now", "4 min", "2 h 5 min", "3 d"."""
    moment = parse_time(value)
    if moment is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < MINUTE_S:
        return "just now"
    if seconds < HOUR_S:
        return f"{seconds // MINUTE_S} min"
    if seconds < DAY_S:
        hours, rest = divmod(seconds, HOUR_S)
        return f"{hours} h {rest // MINUTE_S} min" if rest >= MINUTE_S else f"{hours} h"
    return f"{seconds // DAY_S} d"


def clock(value: str | datetime | None) -> str:
    moment = parse_time(value)
    return "" if moment is None else moment.astimezone(UTC).strftime("%H:%M")


def plain(value: Any) -> Any:
    """Jinja's `finalize`: every printed string without the characters that disguise text (desk.domain.text)."""
    # On already escaped Markup (join's output) `translate` keeps it Markup: removing characters keeps it safe.
    # ASCII cannot hold any of them, and most of what a page prints is ASCII: skip the copy.
    return value.translate(DISGUISES) if isinstance(value, str) and not value.isascii() else value


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value * 100)}%"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
        finalize=plain,
    )
    env.filters.update(since=since, clock=clock, percent=percent)
    return env


ENV = _environment()


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)
