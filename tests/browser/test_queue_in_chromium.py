"""The live queue page in Chromium: items come and go without reloads, two agents race to claim and the loser sees
who won, the skill filter, the keyboard, the SLA countdown changing colour, and the layout at laptop and tablet
widths."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, FloatRect, Page, Route, expect

from tests._support import Desk, Staff, claim, context_bundle, escalate, new_customer, read
from tests.browser._support import TIMEOUT_MS, sign_in

LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}


@asynccontextmanager
async def desk_page(
    chromium: Browser, desk: Desk, agent: Staff, errors: list[str], viewport: dict[str, int] = LAPTOP
) -> AsyncIterator[Page]:
    """An agent's browser on the queue page, its uncaught errors collected."""
    context = await chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{agent.name}: {error}"))
        await sign_in(page, desk.server.url, agent.email)
        yield page
    finally:
        await context.close()


MEASURE_ATTEMPTS = 20


async def queued(desk: Desk, **overrides: Any) -> str:
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle(**overrides))
    conversation_id: str = handoff["conversation_id"]
    return conversation_id


async def box(page: Page, selector: str) -> FloatRect:
    """Where an element is. The live socket may swap it for a fresh copy at any moment (the snapshot it sends on
    connect does): measuring the old copy just as it leaves gives nothing, so measure again, the new one."""
    locator = page.locator(selector).first
    for _ in range(MEASURE_ATTEMPTS):
        await locator.wait_for(state="visible", timeout=TIMEOUT_MS)
        found = await locator.bounding_box()
        if found is not None:
            return found
    raise AssertionError(f"{selector} is not shown")


async def test_items_come_and_go_live_and_a_claim_race_has_one_winner(desk: Desk, chromium: Browser) -> None:
    ann = desk.staff("agent", name="Ann Archer")
    bob = desk.staff("agent", name="Bob Baker")
    cy = desk.staff("agent", name="Cy Cole")
    supervisor = desk.staff("supervisor")
    errors: list[str] = []
    async with desk_page(chromium, desk, ann, errors) as ann_page, desk_page(chromium, desk, bob, errors) as bob_page:
        pages = {ann.id: ann_page, bob.id: bob_page}

        # A new escalation appears on both open pages; someone else's claim takes it off both.
        taken = await queued(desk, customer=new_customer("Tess Taken"))
        for page in pages.values():
            await expect(page.locator(f"#queue-item-{taken}")).to_contain_text("Tess Taken", timeout=TIMEOUT_MS)
        async with desk.api(cy.token) as staff:
            await claim(staff, taken)
        for page in pages.values():
            await expect(page.locator(f"#queue-item-{taken}")).to_have_count(0, timeout=TIMEOUT_MS)

        # Both click Claim on the same item; each request is held until both have been sent, then both go at once.
        contested = await queued(desk, customer=new_customer("Rita Race"))
        sent: list[Route] = []
        both_sent = asyncio.Event()

        async def hold(route: Route) -> None:
            sent.append(route)
            if len(sent) == len(pages):
                both_sent.set()
            await both_sent.wait()
            await route.continue_()

        for page in pages.values():
            await page.route("**/claim", hold)
            await expect(page.locator(f"#queue-item-{contested}")).to_be_visible(timeout=TIMEOUT_MS)
        await asyncio.gather(
            *(page.locator(f"#queue-item-{contested} button.claim-button").click() for page in pages.values())
        )
        # The winner's page opens the conversation; the loser's stays on the queue and says who won.
        opened = f"{desk.server.url}/desk/conversations/{contested}"
        waiting = {
            asyncio.ensure_future(page.wait_for_url(opened, timeout=TIMEOUT_MS)): who for who, page in pages.items()
        }
        done, others = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in others:
            task.cancel()
        winner, loser = (ann, bob) if waiting[done.pop()] == ann.id else (bob, ann)
        async with desk.api(supervisor.token) as staff:
            assert (await read(staff, contested))["assignee"]["id"] == winner.id

        await expect(pages[winner.id]).to_have_url(f"{desk.server.url}/desk/conversations/{contested}")
        await expect(pages[winner.id].locator(f"#status-{contested}")).to_contain_text(winner.name)
        losing = pages[loser.id]
        await expect(losing.locator("#flash")).to_have_text(f"Already claimed by {winner.name}.", timeout=TIMEOUT_MS)
        assert losing.url == f"{desk.server.url}/desk"
        await expect(losing.locator(f"#queue-item-{contested}")).to_have_count(0, timeout=TIMEOUT_MS)
        await expect(losing.locator("#queue")).to_be_visible()
    assert errors == []


async def test_filtering_by_skill_reloads_a_filtered_live_queue(desk: Desk, chromium: Browser) -> None:
    agent = desk.staff("agent", skills=("billing",))
    billing = await queued(desk, skills=["billing"])
    shipping = await queued(desk, skills=["shipping"])
    errors: list[str] = []
    async with desk_page(chromium, desk, agent, errors) as page:
        await expect(page.locator(f"#queue-item-{billing}")).to_be_visible()
        await page.select_option("#queue-skill", "shipping")
        await expect(page).to_have_url(f"{desk.server.url}/desk?skill=shipping", timeout=TIMEOUT_MS)
        await expect(page.locator(f"#queue-item-{shipping}")).to_be_visible()
        await expect(page.locator(f"#queue-item-{billing}")).to_have_count(0)
        await expect(page.locator("#queue-skill")).to_have_value("shipping")
        assert await page.locator("#live").get_attribute("ws-connect") == "/ws/ui?skill=shipping"

        # Live, still filtered: a billing escalation sent first never shows; the shipping one after it does.
        later_billing = await queued(desk, skills=["billing"])
        later_shipping = await queued(desk, skills=["shipping"])
        await expect(page.locator(f"#queue-item-{later_shipping}")).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.locator(f"#queue-item-{later_billing}")).to_have_count(0)
        await expect(page.locator("#queue .count")).to_have_text("2 waiting")
        await expect(page.locator("#queue-announcer")).to_have_text("2 waiting")

        await page.select_option("#queue-skill", "")
        await expect(page).to_have_url(f"{desk.server.url}/desk?skill=", timeout=TIMEOUT_MS)
        await expect(page.locator("#queue .queue-item")).to_have_count(4)
    assert errors == []


async def test_the_keyboard_and_the_sla_countdown(desk: Desk, chromium: Browser, artifacts: Path) -> None:
    agent = desk.staff("agent", name="Kai Keys")
    held = await queued(desk, customer=new_customer("Holly Held"), priority="normal")
    async with desk.api(agent.token) as staff:
        await claim(staff, held)
    low = await queued(desk, customer=new_customer("Lou Low"), priority="low", skills=["shipping"])
    normal = await queued(desk, customer=new_customer("Nia Normal"), priority="normal", skills=["returns"])
    urgent = await queued(desk, customer=new_customer("Uma Urgent"), priority="urgent", skills=["billing", "vip"])
    errors: list[str] = []
    async with desk_page(chromium, desk, agent, errors) as page:
        await page.clock.install()
        await page.goto(f"{desk.server.url}/desk")
        items = page.locator("#queue .queue-item")
        await expect(items).to_have_count(3)
        order = [await item.get_attribute("id") for item in await items.all()]
        assert order == [f"queue-item-{c}" for c in (urgent, normal, low)]

        # The SLA countdown ticks in the browser and changes colour as the deadline nears (urgent: 2 minutes).
        sla = page.locator(f"#queue-item-{urgent} time.sla")
        await expect(sla).to_have_class("sla sla-ok")
        await page.clock.run_for(70_000)
        await expect(sla).to_have_class("sla sla-warn")
        await expect(sla).to_have_text(re.compile(r"^due in \d\ds$"))
        await expect(page.locator(f"#queue-item-{urgent} time.waiting")).to_have_text(re.compile(r"^waiting 1m \d\ds$"))
        await expect(page.locator(f"#queue-item-{normal} time.sla")).to_have_class("sla sla-ok")
        await page.screenshot(path=str(artifacts / "queue.png"))
        await page.clock.run_for(60_000)
        await expect(sla).to_have_class("sla sla-breached")
        await expect(sla).to_have_text(re.compile(r"^overdue \d+s$"))

        # j and k move the focus; ? shows the shortcuts; keys typed into a field are not shortcuts.
        await page.keyboard.press("j")
        await expect(page.locator(f"#queue-item-{urgent}")).to_be_focused()
        await page.keyboard.press("j")
        await page.keyboard.press("j")
        await expect(page.locator(f"#queue-item-{low}")).to_be_focused()
        await page.keyboard.press("k")
        await expect(page.locator(f"#queue-item-{normal}")).to_be_focused()
        await page.keyboard.press("?")
        await expect(page.locator("#queue-help")).to_be_visible()
        await expect(page.locator(".shortcuts-toggle")).to_have_attribute("aria-expanded", "true")
        await page.keyboard.press("?")
        await expect(page.locator("#queue-help")).to_be_hidden()
        await page.focus("#queue-skill")
        await page.keyboard.press("n")
        assert page.url == f"{desk.server.url}/desk"

        # Enter opens the focused item; n opens the top of the queue.
        await page.focus(f"#queue-item-{normal}")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{desk.server.url}/desk/conversations/{normal}")
        await page.goto(f"{desk.server.url}/desk")
        await expect(items).to_have_count(3)
        await page.keyboard.press("n")
        await expect(page).to_have_url(f"{desk.server.url}/desk/conversations/{urgent}")

        # c claims the focused item and opens it.
        await page.goto(f"{desk.server.url}/desk")
        await page.keyboard.press("j")
        await page.keyboard.press("j")
        await expect(page.locator(f"#queue-item-{normal}")).to_be_focused()
        await page.keyboard.press("c")
        await expect(page).to_have_url(f"{desk.server.url}/desk/conversations/{normal}", timeout=TIMEOUT_MS)
        async with desk.api(agent.token) as staff:
            conversation = await read(staff, normal)
        assert conversation["assignee"]["id"] == agent.id
    assert errors == []


async def test_laptop_and_tablet_layouts(desk: Desk, chromium: Browser, artifacts: Path) -> None:
    agent = desk.staff("agent")
    for n in range(4):
        await queued(desk, customer=new_customer(f"Customer {n} with a rather long name to wrap"))
    held = await queued(desk)
    async with desk.api(agent.token) as staff:
        await claim(staff, held)
    errors: list[str] = []
    for viewport, side_by_side in ((LAPTOP, True), (TABLET, False)):
        async with desk_page(chromium, desk, agent, errors, viewport) as page:
            await expect(page.locator("#queue .queue-item")).to_have_count(4)
            await expect(page.locator(f"#mine-item-{held}")).to_be_visible()
            queue, mine = await box(page, "#queue"), await box(page, "#my-conversations")
            if side_by_side:
                assert mine["x"] >= queue["x"] + queue["width"], (queue, mine)
            else:
                assert mine["y"] >= queue["y"] + queue["height"], (queue, mine)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], "nothing sticks out sideways"
            claim_button = await box(page, "#queue .queue-item .claim-button")
            assert claim_button["x"] + claim_button["width"] <= queue["x"] + queue["width"]
            if not side_by_side:
                await page.screenshot(path=str(artifacts / "queue-tablet.png"), full_page=True)
    assert errors == []
