"""A supervisor in Chromium: the floor changing live, reassigning from it while the agents' pages follow, and
watching a live conversation read-only. Nothing is ever reloaded."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests._support import (
    Desk,
    Staff,
    assignee_id,
    claim,
    context_bundle,
    escalate,
    new_customer,
    post_message,
    read,
)
from tests.browser._support import TIMEOUT_MS, sign_in
from tests.web.test_floor_page import age_handoff

LAPTOP: ViewportSize = {"width": 1366, "height": 768}


async def _open(chromium: Browser, base: str, who: Staff, errors: list[str], path: str = "/desk") -> Page:
    context: BrowserContext = await chromium.new_context(viewport=LAPTOP)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{who.name}: {error}"))
    await sign_in(page, base, who.email)
    if path != "/desk":
        await page.goto(base + path)
    return page


async def test_the_floor_changes_live_and_a_reassignment_reaches_both_agents(
    desk: Desk, chromium: Browser, artifacts: Path
) -> None:
    integration = desk.integration()
    ada = desk.staff("agent", name="Ada Lovelace", skills=("billing",), capacity=3)
    bob = desk.staff("agent", name="Bob Babbage", skills=("billing", "returns"), capacity=2)
    desk.staff("agent", name="Cleo Offline", skills=("returns",))
    boss = desk.staff("supervisor", name="Sam Supervisor")
    base, errors = desk.server.url, list[str]()
    async with desk.api(integration.token) as ai, desk.api(ada.token) as ada_api, desk.api(boss.token) as boss_api:

        async def queued(customer: str, skill: str, priority: str) -> str:
            bundle = context_bundle(customer=new_customer(customer), skills=[skill], priority=priority)
            return str((await escalate(ai, bundle))["conversation_id"])

        held = await queued("Carla Customer", "billing", "high")
        await claim(ada_api, held)
        late = await queued("Dmitri Waiting", "returns", "urgent")
        await queued("Erin Patient", "billing", "normal")
        await queued("Femi Later", "returns", "low")
        age_handoff(desk.database_url, late, 100)  # 20 s of its 120 s SLA left: at risk

        ada_page = await _open(chromium, base, ada, errors)
        bob_page = await _open(chromium, base, bob, errors)
        floor = await _open(chromium, base, boss, errors, "/floor")
        try:
            for agent in (ada, bob):
                row = floor.locator(f"#floor-staff-{agent.id}")
                await expect(row).to_contain_text("online", timeout=TIMEOUT_MS)
            await expect(floor.locator("#tile-queued")).to_contain_text("3 queued now")
            await expect(floor.locator(f"#floor-conversation-{late}")).to_contain_text("SLA at risk")
            await floor.screenshot(path=str(artifacts / "floor.png"))

            # An escalation arrives: the tiles and the waiting list change on the open page.
            fresh = await queued("Gus Newcomer", "billing", "high")
            await expect(floor.locator("#tile-queued")).to_contain_text("4 queued now", timeout=TIMEOUT_MS)
            await expect(floor.locator(f"#floor-conversation-{fresh}")).to_be_visible(timeout=TIMEOUT_MS)

            # Reassign Ada's conversation to Bob: both agents' "my conversations" follow, live.
            await expect(ada_page.locator(f"#mine-item-{held}")).to_be_visible(timeout=TIMEOUT_MS)
            row = floor.locator(f"#floor-conversation-{held}")
            await row.locator("select[name=agent_id]").select_option(bob.id)
            await row.locator("button:has-text('Reassign')").click()
            await expect(floor.locator("#flash")).to_contain_text("Assigned to Bob Babbage", timeout=TIMEOUT_MS)
            await expect(row.locator(".agent")).to_have_text("Bob Babbage")
            await expect(bob_page.locator(f"#mine-item-{held}")).to_be_visible(timeout=TIMEOUT_MS)
            await expect(ada_page.locator(f"#mine-item-{held}")).to_have_count(0, timeout=TIMEOUT_MS)
            await expect(floor.locator(f"#floor-staff-{bob.id}")).to_contain_text("1/2", timeout=TIMEOUT_MS)
            assert assignee_id(await read(boss_api, held)) == bob.id

            # A queued conversation can be given to someone from the floor too.
            waiting = floor.locator(f"#floor-conversation-{fresh}")
            await waiting.locator("select[name=agent_id]").select_option(ada.id)
            await waiting.locator("button:has-text('Assign')").click()
            await expect(ada_page.locator(f"#mine-item-{fresh}")).to_be_visible(timeout=TIMEOUT_MS)
            await expect(floor.locator("#tile-queued")).to_contain_text("3 queued now", timeout=TIMEOUT_MS)
        finally:
            for page in (ada_page, bob_page, floor):
                await page.context.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"


async def test_a_supervisor_watches_a_live_conversation_read_only(desk: Desk, chromium: Browser) -> None:
    integration = desk.integration()
    ada, boss = desk.staff("agent", name="Ada Holder"), desk.staff("supervisor")
    base, errors = desk.server.url, list[str]()
    async with desk.api(integration.token) as ai, desk.api(ada.token) as ada_api:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(ada_api, cid)
        floor = await _open(chromium, base, boss, errors, "/floor")
        try:
            await floor.locator(f"#floor-conversation-{cid} a.watch").click()
            await expect(floor).to_have_url(f"{base}/desk/conversations/{cid}", timeout=TIMEOUT_MS)
            timeline = floor.locator(f"#timeline-items-{cid}")
            await expect(timeline).to_contain_text("I was charged twice for November.", timeout=TIMEOUT_MS)
            await expect(floor.locator(f"#reply-text-{cid}")).to_have_count(0)

            async with desk.chat(handoff["customer_token"]) as customer:
                await customer.say("Hello? Is anyone still there?")
                await expect(timeline).to_contain_text("Is anyone still there?", timeout=TIMEOUT_MS)
            await post_message(ada_api, cid, "Yes, sorry, checking the charge now.")
            await expect(timeline).to_contain_text("checking the charge now", timeout=TIMEOUT_MS)
            await expect(floor.locator(f"#reply-text-{cid}")).to_have_count(0)
        finally:
            await floor.context.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"
