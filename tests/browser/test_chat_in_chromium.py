"""The customer's chat page in Chromium: reconnects after the connection drops (lost acks, an offline device, a
refused reconnect, a reload) with no gaps and no duplicates; queue position, join, typing, hand-back and the
rating prompt; XSS payloads and disguised names stay inert.

The customer reaches the desk through a TCP proxy (tests/browser/_chat_support.py), so the test cuts the
connection as a network would; the page has no test hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Dialog, Page, ViewportSize, expect

from tests._support import (
    Desk,
    Json,
    assert_gapless,
    claim,
    context_bundle,
    create_conversation,
    escalate,
    outcome,
    post_message,
    read,
)
from tests.browser._chat_support import ChatFrames, Proxy, eventually, proxy_to
from tests.browser._support import TIMEOUT_MS

PHONE: ViewportSize = {"width": 375, "height": 740}
# Reconnecting against a refusing server backs off (0.5 s doubling, full jitter): a few attempts fit in here.
BACKOFF_TIMEOUT_MS = 25_000


async def texts_in(client: httpx.AsyncClient, conversation_id: str) -> list[str]:
    return [m["text"] for m in (await read(client, conversation_id))["messages"]]


class Customer:
    """The customer's page, seen the way they see it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.messages = page.locator("#chat-messages")
        self.status = page.locator("#chat-status")
        self.connection = page.locator("#chat-connection")
        self.pending = page.locator("#chat-messages .chat-pending")

    async def say(self, text: str) -> None:
        await self.page.fill("#chat-text", text)
        await self.page.press("#chat-text", "Enter")

    def line(self, text: str) -> Any:
        return self.messages.locator("li[data-seq]", has_text=text)

    async def sees_once(self, text: str) -> None:
        await expect(self.line(text)).to_have_count(1, timeout=TIMEOUT_MS)

    async def shown(self) -> list[tuple[int, str]]:
        rows: list[list[str]] = await self.messages.locator("li[data-seq]").evaluate_all(
            "items => items.map(li => [li.dataset.seq, li.querySelector('.chat-text').textContent])"
        )
        return [(int(seq), text) for seq, text in rows]


async def open_customer(context: BrowserContext, url: str, frames: ChatFrames, errors: list[str]) -> Customer:
    page = await context.new_page()
    frames.watch(page)
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    customer = Customer(page)
    await expect(customer.status).not_to_have_text("Connecting…", timeout=TIMEOUT_MS)
    return customer


async def assert_shown_exactly(customer: Customer, client: httpx.AsyncClient, conversation_id: str) -> None:
    """The page shows every stored message once, in seq order, and nothing is left pending."""
    conversation = await read(client, conversation_id)
    assert_gapless(conversation)
    stored = [(m["seq"], m["text"]) for m in conversation["messages"]]
    await expect(customer.messages.locator("li[data-seq]")).to_have_count(len(stored), timeout=TIMEOUT_MS)
    await expect(customer.pending).to_have_count(0)
    assert await customer.shown() == stored


async def test_reconnects_resume_and_resend_without_gaps_or_duplicates(
    desk: Desk, chromium: Browser, artifacts: Path
) -> None:
    integration = desk.integration()
    errors: list[str] = []
    frames = ChatFrames()
    context = await chromium.new_context(viewport=PHONE)
    try:
        async with desk.api(integration.token) as ai, proxy_to(desk.server.port) as proxy:
            created = await create_conversation(ai)
            cid = created["id"]
            customer = await open_customer(context, f"{proxy.url}/chat/{created['customer_token']}", frames, errors)
            await customer.say("Hello there")
            await customer.sees_once("Hello there")
            await post_message(ai, cid, "Hi! How can I help?")
            await customer.sees_once("Hi! How can I help?")

            # 1. The ack is lost, then the connection drops: the message is resent with its client_id, stored once.
            proxy.deaf = True
            await customer.say("Has my order shipped?")
            await eventually(lambda: _has(ai, cid, "Has my order shipped?"), "the message to be stored")
            await expect(customer.pending).to_have_count(1)
            proxy.drop()
            proxy.deaf = False
            await customer.sees_once("Has my order shipped?")
            resent = [f for f in frames.sent_messages() if f["text"] == "Has my order shipped?"]
            assert len(resent) == 2, resent
            assert resent[0]["client_id"] == resent[1]["client_id"], resent

            # 2. The device goes offline: what the customer writes waits, greyed; what the AI says meanwhile
            #    arrives after the reconnect, once, in order.
            await context.set_offline(True)
            await expect(customer.connection).to_be_visible(timeout=TIMEOUT_MS)
            await expect(customer.connection).to_contain_text("Reconnecting")
            await customer.say("Written offline, one")
            await customer.say("Written offline, two")
            await expect(customer.pending).to_have_count(2)
            for text in ("While you were away, one", "While you were away, two"):
                await post_message(ai, cid, text)
            await context.set_offline(False)
            await customer.sees_once("Written offline, two")
            await customer.sees_once("While you were away, two")
            await expect(customer.connection).to_be_hidden()
            await assert_shown_exactly(customer, ai, cid)

            # 3. The server side drops and refuses for a while: the page keeps trying, backing off, then resumes.
            proxy.refusing = True
            proxy.drop()
            await expect(customer.connection).to_be_visible(timeout=TIMEOUT_MS)
            await post_message(ai, cid, "Said during the outage")
            await eventually(_refused_twice(proxy), "two refused reconnects")
            proxy.refusing = False
            await expect(customer.line("Said during the outage")).to_have_count(1, timeout=BACKOFF_TIMEOUT_MS)
            await expect(customer.connection).to_be_hidden()

            # 4. A reload while a sent message is unacknowledged: the outbox survives it and is resent.
            proxy.deaf = True
            await customer.say("Sent just before a reload")
            await eventually(lambda: _has(ai, cid, "Sent just before a reload"), "the message to be stored")
            proxy.deaf = False
            sockets_before = frames.sockets
            await customer.page.reload()
            await customer.sees_once("Sent just before a reload")
            after_reload = [f for f in frames.sent_messages() if f["text"] == "Sent just before a reload"]
            assert frames.sockets > sockets_before
            assert len(after_reload) == 2, after_reload
            assert after_reload[0]["client_id"] == after_reload[1]["client_id"]

            await assert_shown_exactly(customer, ai, cid)
            conversation = await read(ai, cid)
            client_ids = [m["client_id"] for m in conversation["messages"] if m["author"]["kind"] == "customer"]
            assert len(client_ids) == len(set(client_ids)) == 5
            texts = [m["text"] for m in conversation["messages"]]
            assert len(texts) == len(set(texts)), texts
            # Phone width: nothing sticks out sideways.
            assert await customer.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await customer.page.screenshot(path=str(artifacts / "chat-reconnect.png"))
    finally:
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def _has(client: httpx.AsyncClient, conversation_id: str, text: str) -> bool:
    return text in await texts_in(client, conversation_id)


def _refused_twice(proxy: Proxy) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return proxy.refused >= 2

    return check


async def rate(customer: Customer, stars: int, comment: str) -> None:
    rating = customer.page.locator("#chat-rating")
    await rating.locator(f"label[for=chat-star-{stars}]").click()
    await rating.locator("#chat-rating-comment").fill(comment)
    await rating.locator("button[type=submit]").click()
    await expect(rating).to_contain_text("Thanks for your feedback")


async def learning_entries(staff: httpx.AsyncClient, conversation_id: str, count: int) -> list[Json]:
    async def entries() -> list[Json]:
        items = (await staff.get("/api/v1/learning-log")).json()["items"]
        found = [e for e in items if e["conversation_id"] == conversation_id and e["csat"] is not None]
        return found if len(found) >= count else []

    found: list[Json] = await eventually(entries, f"{count} rated learning entries")
    return found


async def test_queue_position_join_typing_handback_and_ratings(desk: Desk, chromium: Browser) -> None:
    integration = desk.integration()
    agent = desk.staff("agent", name="Rosa Rating")
    errors: list[str] = []
    frames = ChatFrames()
    context = await chromium.new_context(viewport=PHONE)
    try:
        async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
            for _ in range(2):
                await escalate(ai, context_bundle())  # two customers already wait
            created = await create_conversation(ai)
            cid = created["id"]
            customer = await open_customer(context, created["chat_url"], frames, errors)
            await expect(customer.status).to_have_text("You're chatting with the assistant.")
            await escalate(ai, context_bundle(conversation_id=cid))
            await expect(customer.status).to_contain_text("You're number 3 in line", timeout=TIMEOUT_MS)

            await claim(staff, cid)
            await expect(customer.status).to_have_text("You're now chatting with Rosa Rating.", timeout=TIMEOUT_MS)
            await customer.sees_once("Rosa Rating joined the conversation.")
            async with desk.staff_socket(agent.token) as agent_socket:
                await agent_socket.send({"type": "typing", "conversation_id": cid})
                typing = customer.page.locator("#chat-typing")
                await expect(typing).to_have_text("Rosa Rating is typing…", timeout=TIMEOUT_MS)
                # The customer's typing goes up, at most once every 2 s however fast they type.
                await customer.page.locator("#chat-text").press_sequentially("where is my parcel, please?")
                await agent_socket.until(lambda f: f.get("type") == "typing", "the customer typing")
                sent = frames.sent_times("typing")
                assert sent, "no typing frame went up"
                # 1.5 s: the test sees each frame a little after the page sent it.
                assert all(later - earlier > 1.5 for earlier, later in pairwise(sent)), sent
            await post_message(staff, cid, "It ships today.")
            await customer.sees_once("It ships today.")
            await expect(typing).to_be_hidden()
            agent_line = customer.line("It ships today.")
            await expect(agent_line.locator(".chat-author")).to_have_text("Rosa Rating")
            await expect(agent_line.locator(".chat-role")).to_have_text("Support team")

            # The hand-back: the assistant is back, and the customer is asked how the person did.
            returned = await staff.post(f"/api/v1/conversations/{cid}/return", json=outcome())
            assert returned.status_code == 200, returned.text
            await expect(customer.status).to_have_text("You're back with the assistant.", timeout=TIMEOUT_MS)
            await customer.sees_once("You're back with the assistant.")
            rating = customer.page.locator("#chat-rating")
            await expect(rating).to_be_visible()
            await expect(rating.locator("legend")).to_have_text("How did Rosa Rating do?")
            await rate(customer, 4, "Quick and kind")
            [first] = await learning_entries(staff, cid, 1)
            assert (first["csat"], first["outcome"]["csat_comment"]) == (4, "Quick and kind")

            # A second handoff, resolved this time: asked once more, about this one.
            await escalate(ai, context_bundle(conversation_id=cid))
            await expect(rating).to_be_hidden(timeout=TIMEOUT_MS)
            await claim(staff, cid)
            resolved = await staff.post(f"/api/v1/conversations/{cid}/resolve", json=outcome())
            assert resolved.status_code == 200, resolved.text
            await expect(customer.status).to_contain_text("resolved", timeout=TIMEOUT_MS)
            await expect(rating.locator("legend")).to_have_text("How did Rosa Rating do?")
            await rate(customer, 5, "Solved it")
            entries = await learning_entries(staff, cid, 2)
            assert sorted((e["csat"], e["outcome"]["csat_comment"]) for e in entries) == [
                (4, "Quick and kind"),
                (5, "Solved it"),
            ]
            ratings = [f for f in frames.sent if f.get("type") == "rating"]
            assert [r["score"] for r in ratings] == [4, 5], "each handoff is rated once"

            # Once per handoff: a reload does not ask again.
            await customer.page.reload()
            await customer.sees_once("This conversation has been resolved. Thank you!")
            await expect(rating).to_be_hidden()
    finally:
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


XSS_NAME = '<img src=x onerror="window.__pwned=1;alert(1)">\u202eAda\u2066\u200b'
XSS_TEXTS = [
    "<script>window.__pwned=1;alert('script')</script>",
    '<img src=x onerror="window.__pwned=1;alert(2)">',
    '"><svg onload=alert(3)>',
    "{{ 7 * 7 }} <b>bold</b>",
]


async def test_xss_payloads_and_disguised_names_stay_inert(desk: Desk, chromium: Browser) -> None:
    integration = desk.integration()
    agent = desk.staff("agent", name=XSS_NAME)
    errors: list[str] = []
    dialogs: list[str] = []
    context = await chromium.new_context(viewport=PHONE)

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    try:
        async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
            created = await create_conversation(ai)
            cid = created["id"]
            customer = await open_customer(context, created["chat_url"], ChatFrames(), errors)
            customer.page.on("dialog", dismiss)
            await customer.say(XSS_TEXTS[0])
            await post_message(ai, cid, XSS_TEXTS[1])
            await escalate(ai, context_bundle(conversation_id=cid))
            await claim(staff, cid)
            for text in XSS_TEXTS[2:]:
                await post_message(staff, cid, text)
            async with desk.staff_socket(agent.token) as agent_socket:
                await agent_socket.send({"type": "typing", "conversation_id": cid})
                await expect(customer.page.locator("#chat-typing")).to_be_visible(timeout=TIMEOUT_MS)
            for text in XSS_TEXTS:
                await customer.sees_once(text)

            # Shown as text: no element came out of a payload, no script ran.
            chat = customer.page.locator("#chat")
            for tag in ("img", "script", "svg", "b"):
                await expect(chat.locator(tag)).to_have_count(0)
            assert await customer.page.evaluate("window.__pwned === undefined")
            # The name keeps its visible text, loses the controls that could reorder it, and sits in <bdi>.
            cleaned = '<img src=x onerror="window.__pwned=1;alert(1)">Ada'
            names = customer.page.locator("#chat-status bdi, #chat-typing bdi, .chat-from-agent bdi.chat-author")
            await expect(names).to_have_count(4)
            assert set(await names.all_text_contents()) == {cleaned}
            await expect(customer.status).to_have_text(f"You're now chatting with {cleaned}.")
    finally:
        await context.close()
    assert dialogs == [], f"a payload opened a dialog: {dialogs}"
    assert errors == [], f"JavaScript errors on the page: {errors}"
