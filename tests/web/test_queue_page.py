"""The queue page over HTTP on a real server: what each item shows (escaped), the skill filter (page, fragment and
live socket), the "N more" count from SQL, "my conversations", and who may see the page at all."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from markupsafe import escape
from websockets.asyncio.client import connect
from websockets.typing import Origin

from desk.store.events import EventRecord
from desk.web.components.queue import duration, mine_changed, sla_class
from tests._support import (
    Desk,
    claim,
    context_bundle,
    escalate,
    new_customer,
    ok,
    post_message,
)
from tests.web.test_pages import XSS_NAME, XSS_TEXT, assert_no_inline_code, browser, tags_of
from tests.web.test_ui_socket import UiSocket

QUEUE_LIMIT = 200
ITEM = re.compile(r'<li id="queue-item-([0-9a-f]{32})"')


def section(page: str, root_id: str) -> str:
    """One component of a page: from its root element to the next component (or the end)."""
    start = page.index(f'id="{root_id}"')
    ends = [page.find(marker, start + 1) for marker in ('id="my-conversations"', "</main>")]
    return page[start : min([e for e in ends if e > 0], default=len(page))]


def item_of(page: str, conversation_id: str) -> str:
    found = re.search(rf'<li id="queue-item-{conversation_id}".*?</li>', page, re.DOTALL)
    assert found, f"no queue item for {conversation_id} in {page[:2000]}"
    return found.group(0)


def listed(page: str) -> list[str]:
    return ITEM.findall(section(page, "queue"))


def skill_name(label: str) -> str:
    """A skill no other test of the module queues for."""
    return f"{label}-{secrets.token_hex(3)}"


async def queue_with(desk: Desk, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        return [await escalate(ai, bundle) for bundle in bundles]


# --- what an item shows --------------------------------------------------------------------------------------------


async def test_an_item_shows_its_bundle_and_everything_user_supplied_stays_text(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    skill = skill_name("<b>vip</b>")
    [handoff] = await queue_with(
        desk,
        [
            context_bundle(
                customer=new_customer(XSS_NAME),
                summary=XSS_TEXT,
                skills=[skill, "billing"],
                priority="urgent",
                reason={"code": "user_frustration", "detail": XSS_TEXT, "confidence": 0.87},
            )
        ],
    )
    async with browser(desk.server, agent) as page:
        response = await page.get("/desk")
        assert response.status_code == 200
        assert "queue;dur=" in response.headers["Server-Timing"]
        text = response.text
        item = item_of(text, handoff["conversation_id"])
        for shown in ("user_frustration", "AI 87%", ">urgent<", ">billing<", "waiting ", "due in "):
            assert shown in item, f"{shown!r} missing from {item}"
        assert f"<bdi>{escape(XSS_NAME)}</bdi>" in item
        assert str(escape(XSS_TEXT)) in item
        assert str(escape(skill)) in item
        assert re.search(r'<time class="waiting" datetime="[^"]+Z" data-tick="waiting">waiting \d+s</time>', item)
        assert re.search(r'<time class="sla sla-ok" datetime="[^"]+Z" data-tick="sla">', item)
        assert f'href="/desk/conversations/{handoff["conversation_id"]}"' in item
        assert f'aria-label="Claim: {escape(XSS_NAME)}"' in item
        assert_no_inline_code(text)

        queue = section(text, "queue")
        assert '<ol class="queue-items" aria-labelledby="queue-heading" hx-disable>' in queue
        assert "aria-live" not in queue, "only the count is announced, from outside the replaced queue"
        assert '<p id="queue-announcer" class="visually-hidden" aria-live="polite"></p>' in text
        focusable = [attrs.get("tabindex") for tag, attrs in tags_of(queue) if tag == "li"]
        assert focusable[0] == "0"
        assert set(focusable[1:]) <= {"-1"}
        assert '<script src="/static/queue.js" defer></script>' in text
        assert '<link rel="stylesheet" href="/static/queue.css">' in text
        for shortcut in ("<kbd>j</kbd>", "<kbd>c</kbd>", "<kbd>n</kbd>", "<kbd>?</kbd>"):
            assert shortcut in text

    # Static files the page links are served.
    async with desk.api() as anonymous:
        for path in ("/static/queue.js", "/static/queue.css"):
            assert (await anonymous.get(path)).status_code == 200


async def test_positions_agree_with_the_api_and_the_most_urgent_come_first(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    skill = skill_name("order")
    handoffs = await queue_with(desk, [context_bundle(priority=p, skills=[skill]) for p in ("low", "urgent", "high")])
    async with desk.api(agent.token) as staff, browser(desk.server, agent) as page:
        api_items = ok(await staff.get("/api/v1/queue", params={"skill": skill}))["items"]
        text = (await page.get(f"/desk?skill={skill}")).text
    low, urgent, high = (h["conversation_id"] for h in handoffs)
    assert listed(text) == [urgent, high, low] == [i["conversation_id"] for i in api_items]
    for item in api_items:
        assert f'class="position">#{item["position"]}<' in item_of(text, item["conversation_id"])
        assert set(item) >= {"conversation_id", "position", "reason", "priority", "skills", "waiting_since"}
        assert {"sla_due_at", "summary"} <= set(item)


# --- filtering by skill --------------------------------------------------------------------------------------------


async def test_the_skill_filter_narrows_the_page_its_fragment_and_its_socket(module_desk: Desk) -> None:
    desk = module_desk
    wanted, other, own = skill_name("tax"), skill_name("freight"), skill_name("mine")
    agent = desk.staff("agent", skills=(own,))
    first, second, both = await queue_with(
        desk,
        [context_bundle(skills=[wanted]), context_bundle(skills=[other]), context_bundle(skills=[other, wanted])],
    )
    async with browser(desk.server, agent) as page:
        whole = (await page.get("/desk")).text
        options = re.findall(r'<option value="([^"]*)"', whole)
        assert options[0] == ""
        assert {wanted, other, own} <= set(options), "the queue's skills and the agent's own"
        assert options[1:] == sorted(options[1:])

        filtered = await page.get(f"/desk?skill={quote(wanted)}")
        assert filtered.status_code == 200
        shown = listed(filtered.text)
        assert first["conversation_id"] in shown
        assert both["conversation_id"] in shown
        assert second["conversation_id"] not in shown
        assert f'ws-connect="/ws/ui?skill={wanted}"' in filtered.text
        assert f'<option value="{wanted}" selected>' in filtered.text
        assert "1 more" not in filtered.text
        assert re.search(r'class="count">2 waiting<', filtered.text)

        fragment = await page.get(f"/desk/queue?skill={quote(other)}", **{"HX-Request": "true"})
        assert fragment.text.lstrip().startswith('<section id="queue"')
        assert set(listed(fragment.text)) == {second["conversation_id"], both["conversation_id"]}

        # The page's socket, connected with the same filter, pushes the same filtered queue.
        url = f"{desk.server.ws_url}/ws/ui?skill={quote(wanted)}"
        headers = {"Cookie": page.cookie_header()}
        async with connect(url, additional_headers=headers, origin=Origin(desk.server.url), proxy=None) as ws:
            socket = UiSocket(ws)
            snapshot = await socket.until(lambda f: 'id="queue"' in f, "the snapshot")
            assert set(listed(snapshot)) == {first["conversation_id"], both["conversation_id"]}
            [late_other, late_wanted] = await queue_with(
                desk, [context_bundle(skills=[other]), context_bundle(skills=[wanted])]
            )
            pushed = await socket.until(lambda f: late_wanted["conversation_id"] in f, "the new item")
            assert late_other["conversation_id"] not in pushed


async def test_odd_skill_filters_are_answered_never_failed(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    await queue_with(desk, [context_bundle()])
    async with browser(desk.server, agent) as page:
        unknown = await page.get("/desk?skill=no-such-skill")
        assert unknown.status_code == 200
        assert listed(unknown.text) == []
        assert "Nobody is waiting for <bdi>no-such-skill</bdi>." in unknown.text
        assert '<option value="no-such-skill" selected>' in unknown.text

        too_long = await page.get("/desk?skill=" + "x" * 65)
        assert too_long.status_code == 200
        assert 'ws-connect="/ws/ui"' in too_long.text, "an over-long filter is no filter"
        assert listed(too_long.text), "the whole queue"

        for odd in ('<script>alert("x")</script>', "%", "_", '"billing"', "bil%", " "):
            response = await page.get("/desk?skill=" + quote(odd))
            assert response.status_code == 200, odd
            assert "<script>alert" not in response.text
            fragment = await page.get("/desk/queue?skill=" + quote(odd), **{"HX-Request": "true"})
            assert fragment.status_code == 200, odd
        wildcard = await page.get("/desk?skill=" + quote("%"))
        assert listed(wildcard.text) == [], "a LIKE wildcard matches no skill"


# --- how many more -------------------------------------------------------------------------------------------------


async def test_the_page_shows_the_first_200_and_counts_the_rest(desk: Desk) -> None:
    agent = desk.staff("agent")
    integration = desk.integration()
    gate = asyncio.Semaphore(8)
    async with desk.api(integration.token) as ai:

        async def one(priority: str, skills: list[str]) -> dict[str, Any]:
            async with gate:
                return await escalate(ai, context_bundle(priority=priority, skills=skills))

        urgent = await asyncio.gather(*(one("high", ["billing"]) for _ in range(QUEUE_LIMIT)))
        last = await asyncio.gather(*(one("low", ["shipping"]) for _ in range(3)))
    async with browser(desk.server, agent) as page:
        text = (await page.get("/desk")).text
        assert len(listed(text)) == QUEUE_LIMIT
        assert set(listed(text)) == {h["conversation_id"] for h in urgent}, "the least urgent are the ones left out"
        assert re.search(r'class="count">203 waiting<', text)
        assert '<p class="queue-more">and 3 more waiting</p>' in text

        shipping = (await page.get("/desk?skill=shipping")).text
        assert set(listed(shipping)) == {h["conversation_id"] for h in last}
        positions = re.findall(r'class="position">#(\d+)<', shipping)
        assert sorted(int(p) for p in positions) == [201, 202, 203], "places in the whole queue"
        assert "more waiting" not in shipping


# --- my conversations ----------------------------------------------------------------------------------------------


async def test_my_conversations_say_who_wrote_last(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    [handoff] = await queue_with(desk, [context_bundle(customer=new_customer(XSS_NAME), priority="high")])
    conversation_id = handoff["conversation_id"]
    async with desk.api(agent.token) as staff:
        await claim(staff, conversation_id)
        async with browser(desk.server, agent) as page, desk.chat(handoff["customer_token"]) as customer:
            mine = section((await page.get("/desk")).text, "my-conversations")
            item = re.search(rf'<li id="mine-item-{conversation_id}".*?</li>', mine, re.DOTALL)
            assert item, mine
            assert f"<bdi>{escape(XSS_NAME)}</bdi>" in item.group(0)
            assert ">assigned<" in item.group(0)
            assert ">high<" in item.group(0)
            assert "Customer wrote last" not in item.group(0), "the last message is the desk's 'joined' line"
            assert re.search(r'last activity <time datetime="[^"]+" data-tick="ago">\d+s ago</time>', item.group(0))

            await customer.say("Still there?")
            mine = section((await page.get("/desk")).text, "my-conversations")
            assert "Customer wrote last" in mine

            await post_message(staff, conversation_id, "Yes, looking at it now.")
            mine = section((await page.get("/desk")).text, "my-conversations")
            assert "Customer wrote last" not in mine
            assert conversation_id not in section((await page.get("/desk")).text, "queue")


# --- who may see it ------------------------------------------------------------------------------------------------


async def test_signed_out_visitors_are_sent_to_sign_in(module_desk: Desk) -> None:
    async with browser(module_desk.server) as page:
        for path in ("/desk", "/desk?skill=billing", "/desk/queue"):
            response = await page.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=/desk"), response.headers["location"]
        htmx = await page.get("/desk/queue?skill=billing", **{"HX-Request": "true"})
        assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (401, "/login")


# --- the SLA colour rule -------------------------------------------------------------------------------------------


def test_the_sla_colour_follows_the_share_of_the_sla_left() -> None:
    since = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    due = since + timedelta(minutes=10)
    assert sla_class(since, due, since) == "sla-ok"
    assert sla_class(since, due, since + timedelta(minutes=4, seconds=59)) == "sla-ok"
    assert sla_class(since, due, since + timedelta(minutes=5)) == "sla-warn"
    assert sla_class(since, due, due - timedelta(seconds=1)) == "sla-warn"
    assert sla_class(since, due, due) == "sla-breached"
    shown = [duration(s) for s in (0, 59, 61, 3600 + 7 * 60, 2 * 86400 + 3600)]
    assert shown == ["0s", "59s", "1m 01s", "1h 07m", "2d 01h"]


def test_only_events_about_their_conversations_change_my_conversations() -> None:
    def event(kind: str, conversation_id: str, **data: Any) -> EventRecord:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        return EventRecord(1, kind, at, conversation_id, None, data, True, False, False, None, True)

    held = {"c-held"}
    assert not mine_changed("me", held, [event("handoff.created", "c-new")])
    assert not mine_changed("me", held, [event("handoff.claimed", "c-new", agent={"id": "someone"})])
    assert mine_changed("me", held, [event("handoff.claimed", "c-new", agent={"id": "me"})])
    assert mine_changed("me", held, [event("handoff.transferred", "c-held", agent={"id": "someone"})])
    assert mine_changed("me", held, [event("message.created", "c-held")])
