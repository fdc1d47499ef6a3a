"""Safe deferral (tier 4): collect how and when to get back to the customer, in the chat. Pure.

Two steps: a contact (an email address or a phone number), then a preferred time (parsed by
`hours.parse_callback_time`). An answer that does not fit is asked again once; after that the desk goes on with
what it has: no contact means the team answers in this chat, no time means the default (the next opening, or
`requeue_after_s` from now).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from desk.domain.flows import render
from desk.domain.hours import describe, parse_callback_time
from desk.domain.policy import Deferral, Hours

STEP_CONTACT = 0
STEP_TIME = 1
STEP_DONE = 2
ATTEMPTS = 2  # answers per step before the desk goes on without it

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?\d[\d ().-]{5,20}\d")
NO_CONTACT = "this chat"


@dataclass(frozen=True)
class CallbackTurn:
    say: str
    step: int
    attempts: int
    contact: str | None
    at: datetime | None  # set once the time step is over
    done: bool = False


def contact_in(text: str) -> str | None:
    """The email address or phone number in `text`, as written."""
    found = _EMAIL.search(text) or _PHONE.search(text)
    return found.group(0) if found else None


def answer(
    rules: Deferral,
    hours: Hours | None,
    *,
    step: int,
    attempts: int,
    contact: str | None,
    text: str,
    now: datetime,
    default_at: datetime,
) -> CallbackTurn:
    if step == STEP_CONTACT:
        found = contact_in(text)
        if found is None and attempts + 1 < ATTEMPTS:
            return CallbackTurn(
                say="Sorry, I need an email address or a phone number. " + rules.ask_contact,
                step=STEP_CONTACT,
                attempts=attempts + 1,
                contact=None,
                at=None,
            )
        return CallbackTurn(say=rules.ask_time, step=STEP_TIME, attempts=0, contact=found, at=None)
    if step == STEP_TIME:
        at = parse_callback_time(text, now=now, hours=hours)
        if at is None and attempts + 1 < ATTEMPTS:
            return CallbackTurn(
                say="Sorry, I didn't understand that time. " + rules.ask_time,
                step=STEP_TIME,
                attempts=attempts + 1,
                contact=contact,
                at=None,
            )
        when = at or default_at
        confirm = render(rules.confirm, {"contact": contact or NO_CONTACT, "time": describe(when, hours)})
        return CallbackTurn(say=confirm, step=STEP_DONE, attempts=0, contact=contact, at=when, done=True)
    return CallbackTurn(say="", step=STEP_DONE, attempts=0, contact=contact, at=None, done=True)
