"""Safe deferral (tier 4) through real `desk serve` processes: when no human can take a conversation (the desk is
closed, nobody is online, the queue is full) the customer is told, asked how and when to be called back, and the
integration hears of it; when a human can, the conversation is queued, with a wait estimate once claims give one.

Each test runs its own desk on SQLite with its own policy file; the AI is a real HTTP server (tests/fallback/_ai.py)
that also receives the integration's event deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests import _support as support
from tests._support import (
    ChatSocket,
    Desk,
    Json,
    Staff,
    claim,
    context_bundle,
    create_conversation,
    escalate,
    read,
)
from tests.fallback._ai import AIServer, running_ai
from tests.fallback.test_ladder import enrol, from_desk, hears, policy_version, said_by_desk
from tests.web.test_pages import browser
from tests.web.test_ui_socket import open_ui

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December",
)  # fmt: skip
ASK_PERSON = "I want to talk to a person"
ASK_CONTACT = "We can get back to you instead. How can we reach you: an email address or a phone number?"
ASK_TIME = "When would suit you? (e.g. 'tomorrow 10:00', '14:30', or 'any time')"
NOBODY = "Of course. Nobody from our team can join at the moment, though."


@dataclass
class Deferring:
    """A desk started with the test's policy, the AI it talks to, and who reads its conversations."""

    desk: Desk
    ai: AIServer
    token: str  # the integration's
    supervisor: Staff
    version: str

    async def conversation(self) -> Json:
        async with self.desk.api(self.token) as client:
            return await create_conversation(client)

    async def read(self, conversation_id: str) -> Json:
        async with self.desk.api(self.supervisor.token) as staff:
            return await read(staff, conversation_id)


Start = Callable[[str], Deferring]


@pytest.fixture
def start(server: support.ServerPool, tmp_path: Path) -> Iterator[Start]:
    """`start(policy_text)`: a desk on SQLite with that policy, an AI with its integration, and a supervisor. The AI
    answers every turn confidently: what routes is the customer asking for a person."""
    with running_ai() as ai, support.database("sqlite", tmp_path) as url:

        def started(text: str) -> Deferring:
            path = tmp_path / "policy.toml"
            path.write_text(text)
            desk = Desk(server(url, env={"DESK_POLICY_FILE": str(path)}))
            integration, supervisor = enrol(desk, ai)
            ai.reply("I can help with that myself!", 0.95)
            return Deferring(desk, ai, integration.token, supervisor, policy_version(text))

        yield started
        ai.assert_signed()


async def ask_for_a_person(customer: ChatSocket) -> None:
    await customer.say(ASK_PERSON)
    await customer.until(lambda f: from_desk(f) and f["text"].startswith("Of course."), "the desk answering")


# --- closed: business hours in a time zone whose date is not UTC's -------------------------------------------------


def zone_off_utc_date(now: datetime) -> ZoneInfo:
    """A zone whose local date differs from the UTC date right now (UTC+14 late in the UTC day, UTC-11 early)."""
    zone = ZoneInfo("Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago")
    assert now.astimezone(zone).date() != now.date(), (now, zone)
    return zone


def described(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    weekday, month = WEEKDAYS[local.weekday()].capitalize(), MONTHS[local.month - 1]
    return f"{weekday} {local.day} {month} at {local:%H:%M} ({zone})"


def hours_policy(zone: ZoneInfo, open_day: date, holidays: list[date]) -> str:
    listed = ", ".join(f'"{day.isoformat()}"' for day in holidays)
    return f"""\
version = "hours-1"

[hours]
timezone = "{zone}"
{WEEKDAYS[open_day.weekday()]} = ["09:00-17:00"]
holidays = [{listed}]
"""


def at_utc(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize("holiday", [False, True], ids=["open_day", "open_day_a_holiday"])
async def test_closed_defers_to_the_next_local_opening(start: Start, holiday: bool) -> None:
    now = datetime.now(UTC)
    zone = zone_off_utc_date(now)
    open_day = now.astimezone(zone).date() + timedelta(days=2)  # the LOCAL day after tomorrow
    opening_day = open_day + timedelta(days=7) if holiday else open_day
    opening = datetime.combine(opening_day, time(9), tzinfo=zone).astimezone(UTC)
    deferring = start(hours_policy(zone, open_day, [open_day] if holiday else []))
    created = await deferring.conversation()
    cid = created["id"]
    async with deferring.desk.chat(created["customer_token"]) as customer:
        await ask_for_a_person(customer)
        await hears(customer, ASK_CONTACT)
        status = await customer.status("deferred")
        await customer.say("not telling you")  # no contact in it: asked once more
        await hears(customer, "Sorry, I need an email address or a phone number.")
        await customer.say("ada@example.com")
        await hears(customer, ASK_TIME)
        await customer.say("2020-01-01 10:00")  # in the past: asked once more
        await hears(customer, "Sorry, I didn't understand that time.")
        await customer.say("when the moon is blue")  # still no time: the default, the opening
        confirm = await hears(customer, "Thank you.")
    assert said_by_desk(customer)[0] == f"{NOBODY} We're closed right now; we open again {described(opening, zone)}."
    assert confirm["text"] == f"Thank you. We'll get back to you at ada@example.com around {described(opening, zone)}."
    assert at_utc(status["deferred_until"]) == opening

    deferred = await deferring.ai.wait_event("conversation.deferred", cid)
    assert deferred["data"]["cause"] == "closed"
    assert deferred["data"]["reason"] == "user_request"
    assert deferred["data"]["policy_version"] == deferring.version
    assert at_utc(deferred["data"]["deferred_until"]) == opening
    scheduled = await deferring.ai.wait_event("callback.scheduled", cid)
    assert scheduled["data"]["contact"] == "ada@example.com"
    assert at_utc(scheduled["data"]["at"]) == opening

    body = await deferring.read(cid)
    assert body["status"] == "deferred"
    assert at_utc(body["deferred_until"]) == opening
    handoff = body["handoff"]
    assert handoff["status"] == "deferred"
    assert handoff["reason"]["code"] == "user_request"
    assert handoff["policy_version"] == deferring.version
    assert handoff["metadata"]["deferral"]["cause"] == "closed"
    assert handoff["metadata"]["deferral"]["callback"]["contact"] == "ada@example.com"
    tier = [e["data"] for e in body["fallback"] if e["type"] == "fallback.tier"]
    assert tier == [
        {"tier": "deferral", "reason": "user_request", "cause": "closed", "policy_version": deferring.version}
    ]


# --- open, but can the queue take it? ------------------------------------------------------------------------------

NOBODY_ONLINE_POLICY = """\
version = "online-1"

[deferral]
when_nobody_online = true
"""


async def test_an_agent_with_the_desk_open_takes_it_instead_of_a_deferral(start: Start) -> None:
    deferring = start(NOBODY_ONLINE_POLICY)
    desk = deferring.desk
    alone, seen = await deferring.conversation(), await deferring.conversation()
    async with desk.chat(alone["customer_token"]) as customer:  # nobody has the desk open
        await ask_for_a_person(customer)
        await customer.status("deferred")
    assert said_by_desk(customer)[:2] == [NOBODY, ASK_CONTACT]

    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page, open_ui(page):
        async with desk.chat(seen["customer_token"]) as customer:
            await ask_for_a_person(customer)
            await customer.status("queued")
        assert said_by_desk(customer) == ["Of course. Let me bring in a person from our team."]
    body = await deferring.read(seen["id"])
    assert body["status"] == "queued"
    assert [e["data"]["tier"] for e in body["fallback"] if e["type"] == "fallback.tier"] == ["human"]
    assert (await deferring.read(alone["id"]))["handoff"]["metadata"]["deferral"]["cause"] == "nobody_online"


QUEUE_POLICY = """\
version = "queue-1"

[deferral]
max_queue_length = 1
"""


async def test_a_full_queue_defers(start: Start) -> None:
    deferring = start(QUEUE_POLICY)
    first, second = await deferring.conversation(), await deferring.conversation()
    async with deferring.desk.chat(first["customer_token"]) as customer:  # the queue is empty: it takes one
        await ask_for_a_person(customer)
        await customer.status("queued")
    async with deferring.desk.chat(second["customer_token"]) as customer:
        await ask_for_a_person(customer)
        await customer.status("deferred")
    assert said_by_desk(customer)[:2] == [f"{NOBODY} Our team is very busy right now.", ASK_CONTACT]
    deferred = await deferring.ai.wait_event("conversation.deferred", second["id"])
    assert deferred["data"]["cause"] == "queue_full"
    assert deferring.ai.events(first["id"], "conversation.deferred") == []


async def test_the_wait_estimate_appears_once_claims_give_a_rate(start: Start) -> None:
    deferring = start('version = "eta-1"\n')
    desk = deferring.desk
    waiting = await deferring.conversation()
    async with desk.chat(waiting["customer_token"]) as customer:
        await ask_for_a_person(customer)
        before = await customer.status("queued")
    assert before["position"] == 1
    assert before["eta_s"] is None, "no claims yet: no estimate"

    agent = desk.staff("agent")
    async with desk.api(deferring.token) as client, desk.api(agent.token) as staff:
        for _ in range(2):
            other = await escalate(client, context_bundle())
            await claim(staff, other["conversation_id"])
    async with desk.chat(waiting["customer_token"]) as customer:
        after = await customer.status("queued")
    # Two claims within the minute the rate is measured over at least: 2 per 60 s, so position 1 waits 30 s.
    assert after["position"] == 1
    assert after["eta_s"] == 30
