"""An AI outage as supervisors see it, end to end through `desk serve`: the circuit breaker opens at its threshold
and the desk routes around the AI without calling it, the alert reaches staff exactly once (also with two
processes, each with its own breaker, on one database), the floor shows it, and a trial after the cool-down closes
the breaker or opens it again. From the wrong side: agents see no floor, and neither customers nor the integration
hear of the outage.

The AI is a small real HTTP server in the test (tests/fallback/_ai.py); the policy a TOML file under tmp_path.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from sqlmodel import col, select

from desk.store.db import Database
from desk.store.models import AIProvider, AuditEntry, Event
from desk.store.types import utcnow
from tests import _support as support
from tests._support import (
    ChatSocket,
    Desk,
    Feed,
    Integration,
    Json,
    Staff,
    StaffSocket,
    create_conversation,
    dump,
    ok,
)
from tests._support import read as read_conversation
from tests.fallback._ai import AIServer, ai_integration, eventually, running_ai
from tests.web.test_pages import Browser, browser
from tests.web.test_ui_socket import UiSocket, open_ui

MIN_CALLS = 3
COOLDOWN_S = 2.0
TURN_TIMEOUT_S = 15.0
COOLDOWN_DEADLINE_S = COOLDOWN_S + 10.0
PUSH_WAIT_S = 3.0  # a floor push comes within a fraction of a second of its event
PRIMARY_TIMEOUT_S = 1.0
# The module's desk lets a hung trial last long enough to watch the breaker half-open on the floor.
SLOW_PRIMARY_TIMEOUT_S = 2.0


def outage_policy(timeout_s: float) -> str:
    return f"""\
version = "outage-1"

[ai.primary]
timeout_s = {timeout_s:g}
retries = 0

[ai.breaker]
window_s = 60
min_calls = {MIN_CALLS}
failure_rate = 0.5
cooldown_s = {COOLDOWN_S:g}
"""


QUESTION = "Can you send me a copy of my last invoice?"
# Different enough from each other not to count as the customer repeating themselves.
QUESTIONS = (
    "Can you send me a copy of my last invoice?",
    "Which payment methods do you accept?",
    "How do I add a colleague to my account?",
    "Is there a discount for yearly plans?",
)
ANSWER = "Your invoice is on its way to your inbox."
HUMAN_WORDS = "Sorry, our assistant is having trouble answering right now. Let me bring in a person from our team."
BREAKER_DETAIL = "AI provider unavailable: circuit breaker open"
ERROR_DETAIL = "AI webhook answered 500"
TIMEOUT_DETAIL = "AI webhook unreachable: timeout"
OUTAGE_ALERT = "AI outage: 1 provider down. Their conversations go straight down the fallback ladder."

T = TypeVar("T")
Enter = Callable[[AbstractAsyncContextManager[T]], Awaitable[T]]


# --- desks ----------------------------------------------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param(1, id="sqlite-1-process"),
        pytest.param(2, id="postgres-redis-2-processes", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def outage_desks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Desk]]:
    """One `desk serve` on SQLite, or two on one PostgreSQL database and one Redis: each process its own breaker."""
    processes: int = request.param
    policy = tmp_path / "policy.toml"
    policy.write_text(outage_policy(PRIMARY_TIMEOUT_S))
    env = {"DESK_POLICY_FILE": str(policy)}
    pool = support.ServerPool(tmp_path)
    with support.database("sqlite" if processes == 1 else "postgres", tmp_path) as url:
        try:
            yield [Desk(pool(url, redis=processes > 1, env=env)) for _ in range(processes)]
        finally:
            pool.stop_all()


@pytest.fixture(scope="module")
def outage_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A desk on SQLite for the tests that each bring their own AI (its own URL: its own breaker and row)."""
    directory = tmp_path_factory.mktemp("outage")
    policy = directory / "policy.toml"
    policy.write_text(outage_policy(SLOW_PRIMARY_TIMEOUT_S))
    pool = support.ServerPool(directory)
    with support.database("sqlite", directory) as url:
        try:
            yield Desk(pool(url, env={"DESK_POLICY_FILE": str(policy)}))
        finally:
            pool.stop_all()


@dataclass(frozen=True)
class Crew:
    supervisor: Staff
    agent: Staff


@pytest.fixture(scope="module")
def crew(outage_desk: Desk) -> Crew:
    """The module desk's staff (each `desk user create` is a Python start-up: made once)."""
    return Crew(outage_desk.staff("supervisor"), outage_desk.staff("agent"))


@pytest.fixture
def ai() -> Iterator[AIServer]:
    with running_ai() as server:
        yield server


# --- customers and their turns --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    conversation_id: str
    chat: ChatSocket


async def customers(enter: Enter[ChatSocket], desk: Desk, integration: Integration, count: int) -> list[Customer]:
    """`count` conversations with the AI in control, each with its customer's chat socket open on `desk`."""
    async with desk.api(integration.token) as client:
        created = [await create_conversation(client) for _ in range(count)]
    opened = []
    for conversation in created:
        chat = await enter(desk.chat(conversation["customer_token"]))
        await chat.status("bot")
        opened.append(Customer(conversation["id"], chat))
    return opened


def from_desk(frame: Json) -> bool:
    return frame.get("type") == "message" and frame.get("author", {}).get("kind") == "ai"


async def turn(customer: Customer, words: str) -> float:
    """The customer asks; the seconds until the assistant's side says `words`."""
    began = time.monotonic()
    await customer.chat.say(QUESTION)
    await customer.chat.until(
        lambda f: from_desk(f) and words in f["text"], f"the desk saying {words!r}", TURN_TIMEOUT_S
    )
    return time.monotonic() - began


async def handed_over(customer: Customer) -> float:
    """A turn that ends with a person: the human tier's words, then the customer's status is queued."""
    took = await turn(customer, HUMAN_WORDS)
    await customer.chat.status("queued", TURN_TIMEOUT_S)
    return took


async def handoff_of(desk: Desk, supervisor: Staff, customer: Customer) -> Json:
    async with desk.api(supervisor.token) as staff:
        body = await read_conversation(staff, customer.conversation_id)
    assert body["status"] == "queued", body["status"]
    handoff = body["handoff"]
    assert isinstance(handoff, dict), handoff
    assert handoff["status"] == "queued", handoff
    return handoff


def ai_errors(body: Json) -> list[Json]:
    return [e["data"] for e in body["fallback"] if e["type"] == "signal.detected" and e["data"]["kind"] == "ai_error"]


async def cooled_down(since: datetime) -> None:
    """Wait out the cool-down that began before `since`. The desk shows nothing of a breaker between changes (it
    turns half-open when a call asks it), so the condition is the clock's, under a deadline."""
    due = since + timedelta(seconds=COOLDOWN_S)
    await eventually(lambda: utcnow() >= due, f"the {COOLDOWN_S:g} s cool-down", COOLDOWN_DEADLINE_S)


# --- what the database, the floor and the sockets say ---------------------------------------------------------------


class Recorded:
    """What the database holds about one provider: its AIProvider row, and the alerts raised about it."""

    def __init__(self, database_url: str, url: str) -> None:
        self.db = Database(database_url)
        self.url = url

    def row(self) -> AIProvider | None:
        with self.db.read() as session:
            return session.exec(select(AIProvider).where(col(AIProvider.url) == self.url)).first()

    def state(self) -> str | None:
        row = self.row()
        return None if row is None else row.state

    def alerts(self) -> list[str]:
        """The `ai.*` events about this provider, in order."""
        with self.db.read() as session:
            events = session.exec(select(Event).where(col(Event.type).startswith("ai.breaker")).order_by(col(Event.id)))
            return [e.type for e in events if e.data["provider"]["url"] == self.url]

    def audited(self) -> list[str]:
        with self.db.read() as session:
            entries = session.exec(select(AuditEntry).where(col(AuditEntry.action).startswith("ai.breaker")))
            return sorted(e.action for e in entries if e.detail["provider"]["url"] == self.url)

    def close(self) -> None:
        self.db.dispose()


def open_row(recorded: Recorded) -> AIProvider:
    row = recorded.row()
    assert row is not None, "no AIProvider row"
    assert (row.state, row.role, row.url) == ("open", "primary", recorded.url)
    assert row.failure_rate == 1.0
    assert row.opened_at is not None
    return row


@dataclass(frozen=True)
class Shown:
    role: str
    state: str  # the row's data-state
    text: str  # what the row says, cell by cell


_PROVIDER_ROW = re.compile(r'<tr class="provider-row[^"]*" data-state="([a-z_]+)">(.*?)</tr>', re.S)
_CELL_END = re.compile(r"</t[hd]>")
_TAG = re.compile(r"<[^>]+>")
_ALERT = re.compile(r'<p class="floor-alert" role="alert">(.*?)</p>', re.S)


def providers_shown(page: str) -> dict[str, Shown]:
    """The floor's AI panel, by host."""
    shown = {}
    for state, row in _PROVIDER_ROW.findall(page):
        cells = [" ".join(html.unescape(_TAG.sub(" ", cell)).split()) for cell in _CELL_END.split(row)]
        shown[cells[1]] = Shown(cells[0], state, " | ".join(cells[:-1]))
    return shown


def alert_of(page: str) -> str | None:
    found = _ALERT.search(page)
    return None if found is None else " ".join(found.group(1).split())


async def floor_page(page: Browser) -> str:
    response = await page.get("/floor")
    assert response.status_code == 200, response.text[:500]
    return response.text


def floor_push(host: str, state: str, *, alert: bool) -> Callable[[str], bool]:
    """A floor pushed out of band whose AI panel shows the provider at `host` in `state`, with or without the
    outage alert."""

    def matches(frame: str) -> bool:
        if '<section id="floor" class="floor" aria-label="The floor" hx-swap-oob="true">' not in frame:
            return False
        shown = providers_shown(frame).get(host)
        return shown is not None and shown.state == state and (alert_of(frame) is not None) == alert

    return matches


def count(socket: StaffSocket, type: str) -> int:
    return sum(1 for e in socket.events() if e["type"] == type)


def host_of(ai: AIServer) -> str:
    return urlsplit(ai.url).netloc


# --- the breaker opens, the desk routes around it, a good trial closes it -------------------------------------------


async def test_the_breaker_opens_at_its_threshold_and_a_good_trial_closes_it(
    outage_desks: list[Desk], ai: AIServer
) -> None:
    desks = outage_desks
    home = desks[0]
    integration = ai_integration(home, ai)
    supervisor = home.staff("supervisor")
    host = host_of(ai)
    recorded = Recorded(home.database_url, ai.url)
    ai.fail(500)
    async with AsyncExitStack() as stack:
        stack.callback(recorded.close)
        enter = stack.enter_async_context
        sockets = [await enter(d.staff_socket(supervisor.token)) for d in desks]
        page = await enter(browser(home.server, supervisor))
        floor_ws: UiSocket = await enter(open_ui(page, query="page=floor"))
        # Per process: the turns that open its breaker and one the open breaker keeps from the AI; then the trial.
        lines = [await customers(enter, d, integration, MIN_CALLS + 1) for d in desks]
        [trial] = await customers(enter, home, integration, 1)
        everyone = [c for line in lines for c in line] + [trial]

        for customer in [c for line in lines for c in line[: MIN_CALLS - 1]]:
            await handed_over(customer)
        assert ai.turn_count() == (MIN_CALLS - 1) * len(desks)
        assert recorded.row() is None, "under min_calls the breaker stays closed and nothing is recorded"

        # Every process's breaker opens on its own threshold turn, at the same time as the others'.
        await asyncio.gather(*(handed_over(line[MIN_CALLS - 1]) for line in lines))
        seen_open = utcnow()  # each breaker opened (and was recorded) before its turn's handoff
        assert ai.turn_count() == MIN_CALLS * len(desks)
        for socket in sockets:
            opened = await socket.event("ai.breaker_opened")
            assert opened["conversation_id"] is None
            assert opened["data"]["provider"]["role"] == "primary"
            assert opened["data"]["provider"]["url"] == ai.url
            assert opened["data"]["failure_rate"] == 1.0
            assert opened["data"]["last_error"] == "HTTP 500"
        row = open_row(recorded)
        assert row.integration_id == integration.id
        assert row.last_error == "HTTP 500"
        assert row.opened_at is not None
        assert row.opened_at <= seen_open
        for customer in [c for line in lines for c in line[:MIN_CALLS]]:
            handoff = await handoff_of(home, supervisor, customer)
            assert (handoff["reason"]["code"], handoff["reason"]["detail"]) == ("system_error", ERROR_DETAIL)

        # The open breaker keeps the next turn from the AI: a call that got through would now wait out the whole
        # time limit, so an answer well within it shows that none was made.
        ai.hang()
        took = await asyncio.gather(*(handed_over(line[MIN_CALLS]) for line in lines))
        assert max(took) < PRIMARY_TIMEOUT_S, took
        assert ai.turn_count() == MIN_CALLS * len(desks), "a turn reached the AI through an open breaker"
        for line in lines:
            async with home.api(supervisor.token) as staff:
                kept = await read_conversation(staff, line[MIN_CALLS].conversation_id)
            reason = kept["handoff"]["reason"]
            assert (reason["code"], reason["detail"]) == ("system_error", BREAKER_DETAIL)
            [error] = ai_errors(kept)
            assert (error["error"], error["role"], error["attempts"]) == ("breaker_open", "primary", 1)
        assert recorded.state() == "open"

        # One alert, however many processes saw the outage: every later event has arrived, and no second one.
        for socket in sockets:
            for customer in [c for line in lines for c in line]:
                await socket.event("handoff.created", customer.conversation_id)
            assert count(socket, "ai.breaker_opened") == 1, socket.events()
        assert recorded.alerts() == ["ai.breaker_opened"]
        assert recorded.audited() == ["ai.breaker_opened"]

        body = await floor_page(page)
        assert alert_of(body) == OUTAGE_ALERT
        shown = providers_shown(body)[host]
        assert (shown.role, shown.state) == ("primary", "open")
        assert "down (breaker open)" in shown.text
        assert "100%" in shown.text
        assert "HTTP 500" in shown.text
        await floor_ws.until(floor_push(host, "open", alert=True), "the floor pushed with the outage alert")

        # The AI recovers; after the cool-down the next turn is the trial, and its answer closes the breaker.
        ai.reply(ANSWER, 0.9)
        await cooled_down(seen_open)
        await turn(trial, ANSWER)
        assert ai.turn_texts(trial.conversation_id) == [QUESTION]
        assert ai.turn_count() == MIN_CALLS * len(desks) + 1
        for socket in sockets:
            closed = await socket.event("ai.breaker_closed")
            assert closed["conversation_id"] is None
            assert (closed["data"]["provider"]["role"], closed["data"]["provider"]["url"]) == ("primary", ai.url)
        closed_row = recorded.row()
        assert closed_row is not None
        assert (closed_row.state, closed_row.failure_rate) == ("closed", None)
        async with home.api(supervisor.token) as staff:
            answered = await read_conversation(staff, trial.conversation_id)
        assert (answered["status"], answered["handoff"]) == ("bot", None)

        body = await floor_page(page)
        assert alert_of(body) is None
        shown = providers_shown(body)[host]
        assert shown.state == "closed"
        assert "healthy" in shown.text
        # (The floor pushed on the closing: test_a_breaker_change_alone_pushes_the_floor.)

        async with home.api(supervisor.token) as staff:
            kpis = ok(await staff.get("/api/v1/metrics/summary", params={"window": "1h"}))["ai"]
        assert kpis["breaker_openings"] == 1
        for socket in sockets:
            assert (count(socket, "ai.breaker_opened"), count(socket, "ai.breaker_closed")) == (1, 1)
        assert recorded.alerts() == ["ai.breaker_opened", "ai.breaker_closed"]
        for customer in everyone:
            assert "breaker" not in dump(customer.chat.frames)
    ai.assert_signed()


# --- a failed trial ---------------------------------------------------------------------------------------------------


async def test_a_failed_trial_opens_the_breaker_again_for_another_cool_down(
    outage_desk: Desk, crew: Crew, ai: AIServer
) -> None:
    desk = outage_desk
    integration = ai_integration(desk, ai)
    supervisor = crew.supervisor
    host = host_of(ai)
    recorded = Recorded(desk.database_url, ai.url)
    ai.fail(500)
    async with AsyncExitStack() as stack:
        stack.callback(recorded.close)
        enter = stack.enter_async_context
        socket = await enter(desk.staff_socket(supervisor.token))
        page = await enter(browser(desk.server, supervisor))
        line = await customers(enter, desk, integration, MIN_CALLS + 3)
        opening, failed_trial, kept_out, good_trial = line[:MIN_CALLS], *line[MIN_CALLS:]

        for customer in opening:
            await handed_over(customer)
        first_opened = await socket.event("ai.breaker_opened", where=lambda e: e["data"]["provider"]["url"] == ai.url)
        seen_open = utcnow()
        first_row = open_row(recorded)

        # The trial hangs: while it runs the breaker is half-open, and the floor says so.
        ai.hang()
        await cooled_down(seen_open)
        trial_turn = asyncio.create_task(handed_over(failed_trial))
        await eventually(lambda: recorded.state() == "half_open", "the breaker recorded half-open")
        shown = providers_shown(await floor_page(page))[host]
        assert shown.state == "half_open"
        assert "testing" in shown.text
        await trial_turn
        reopened_at = utcnow()
        # Open again, with a new cool-down: the next turn is kept from the AI.
        await handed_over(kept_out)
        assert ai.turn_count(kept_out.conversation_id) == 0
        assert ai.turn_texts(failed_trial.conversation_id) == [QUESTION], "the trial reached the AI"
        assert (await handoff_of(desk, supervisor, failed_trial))["reason"]["detail"] == TIMEOUT_DETAIL

        again = await socket.event(
            "ai.breaker_opened",
            where=lambda e: e["data"]["provider"]["url"] == ai.url and e["id"] != first_opened["id"],
        )
        assert int(again["id"]) > int(first_opened["id"])
        assert again["data"]["last_error"] == f"no answer within {SLOW_PRIMARY_TIMEOUT_S:g} s"
        row = open_row(recorded)
        assert row.opened_at is not None
        assert first_row.opened_at is not None
        assert row.opened_at > first_row.opened_at, "the cool-down starts again from the failed trial"
        assert recorded.alerts() == ["ai.breaker_opened", "ai.breaker_opened"]
        body = await floor_page(page)
        assert alert_of(body) is not None
        assert providers_shown(body)[host].state == "open"

        # After the new cool-down, a good trial closes it.
        assert (await handoff_of(desk, supervisor, kept_out))["reason"]["detail"] == BREAKER_DETAIL
        ai.reply(ANSWER, 0.9)
        await cooled_down(reopened_at)
        await turn(good_trial, ANSWER)
        await socket.event("ai.breaker_closed", where=lambda e: e["data"]["provider"]["url"] == ai.url)
        assert recorded.state() == "closed"
        assert recorded.alerts() == ["ai.breaker_opened", "ai.breaker_opened", "ai.breaker_closed"]
        assert ai.turn_count() == MIN_CALLS + 2


# --- the floor pushed on a breaker change ---------------------------------------------------------------------------


class FloorNotPushed(AssertionError):
    """The floor socket did not get the re-rendered floor in time."""


async def test_a_breaker_change_alone_pushes_the_floor(outage_desk: Desk, crew: Crew, ai: AIServer) -> None:
    with running_ai() as secondary:
        await _floor_pushed_on_opening(outage_desk, crew.supervisor, ai, secondary)


async def _floor_pushed_on_opening(desk: Desk, supervisor: Staff, ai: AIServer, secondary: AIServer) -> None:
    host = host_of(ai)
    async with AsyncExitStack() as stack:
        integration = ai_integration(desk, ai, secondary)
        ai.fail(500)
        secondary.reply(ANSWER, 0.9)
        enter = stack.enter_async_context
        socket = await enter(desk.staff_socket(supervisor.token))
        page = await enter(browser(desk.server, supervisor))
        floor_ws: UiSocket = await enter(open_ui(page, query="page=floor"))
        [customer] = await customers(enter, desk, integration, 1)
        # The secondary answers every turn: the outage costs the customer nothing, and no handoff is made.
        for question in QUESTIONS[: MIN_CALLS + 1]:
            await customer.chat.say(question)
            await customer.chat.until(lambda f: from_desk(f) and f["text"] == ANSWER, "the secondary's answer")
        await socket.event("ai.breaker_opened", where=lambda e: e["data"]["provider"]["url"] == ai.url)
        assert (ai.turn_count(), secondary.turn_count()) == (MIN_CALLS, MIN_CALLS + 1)
        assert customer.chat.frames[-1].get("type") != "status"
        try:
            await floor_ws.until(floor_push(host, "open", alert=True), "the floor pushed with the alert", PUSH_WAIT_S)
        except AssertionError as missing:
            raise FloorNotPushed(str(missing)[:300]) from None


# --- from the wrong side ----------------------------------------------------------------------------------------------


async def test_agents_see_no_floor_and_customers_and_integrations_never_hear_of_it(
    outage_desk: Desk, crew: Crew, ai: AIServer
) -> None:
    desk = outage_desk
    integration = ai_integration(desk, ai)
    agent, supervisor = crew.agent, crew.supervisor
    host = host_of(ai)
    ai.fail(500)

    def mine(event: Json) -> bool:
        return bool(event["data"]["provider"]["url"] == ai.url)

    async with AsyncExitStack() as stack:
        enter = stack.enter_async_context
        agent_ws = await enter(desk.staff_socket(agent.token))
        supervisor_ws = await enter(desk.staff_socket(supervisor.token))
        agent_page = await enter(browser(desk.server, agent))
        agent_ui: UiSocket = await enter(open_ui(agent_page, query="page=floor"))
        integration_api = await enter(desk.api(integration.token))
        feed = Feed(integration_api)
        await feed.poll()
        line = await customers(enter, desk, integration, MIN_CALLS)
        for customer in line:
            await handed_over(customer)
        last = line[-1].conversation_id

        await supervisor_ws.event("ai.breaker_opened", where=mine)
        # Agents do hear of it on their socket: the alert is a queue event, and an outage fills their queue.
        await agent_ws.event("ai.breaker_opened", where=mine)

        # The floor, AI panel included, is for supervisors and admins only.
        refused = await agent_page.get("/floor")
        assert refused.status_code == 403
        assert "for supervisors and admins" in refused.text
        assert 'id="floor-ai"' not in refused.text
        assert host not in refused.text
        fragment = await agent_page.get("/floor/fragment", **{"HX-Request": "true"})
        assert fragment.status_code == 403
        assert fragment.headers["hx-retarget"] == "#flash"
        assert host not in fragment.text
        # An agent's socket asking for the floor gets the desk page: the queue, never the floor or its AI panel.
        await agent_ui.until(lambda f: f'id="queue-item-{last}"' in f, "the queue with the last handoff")
        await agent_ui.settle()
        assert 'id="floor' not in agent_ui.everything()
        assert host not in agent_ui.everything()

        # Customers and the integration never hear of it: not on /ws/chat, not in the feed, not by webhook.
        await feed.wait_for("handoff.created", last)
        await ai.wait_event("handoff.created", last)
        assert not [e for e in feed.events if e["type"].startswith("ai.")], feed.events
        assert not [e for e in ai.events() if str(e.get("type", "")).startswith("ai.")]
        for customer in line:
            frames = dump(customer.chat.frames)
            assert "breaker" not in frames, customer.chat.frames
            assert host not in frames, customer.chat.frames
        assert all(not isinstance(e.get("data"), dict) or "provider" not in e["data"] for e in feed.events)
