"""The workspace from the keyboard, in Chromium: shortcuts, canned replies with "/", a recommendation inserted with
Alt+N, internal notes, the outcome form, and the layout at laptop and tablet widths."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, FloatRect, Page, expect

from desk.actions.canned import create_canned
from desk.auth.principals import StaffPrincipal
from tests._support import Desk, context_bundle, escalate, read
from tests.browser._support import TIMEOUT_MS, sign_in
from tests.web.test_workspace import database, stored_usage

REFUND_BODY = "Your refund is on its way: 3 to 5 working days."


async def _box(page: Page, selector: str) -> FloatRect:
    box = await page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


async def test_the_workspace_from_the_keyboard(desk: Desk, chromium: Browser, artifacts: Path) -> None:
    agent = desk.staff("agent", name="Kim Keys")
    supervisor = desk.staff("supervisor")
    by = StaffPrincipal(id=supervisor.id, name=supervisor.name, role="supervisor", email=supervisor.email)
    with database(desk) as db:
        create_canned(db, by=by, title="Refund sent", body=REFUND_BODY)
        create_canned(db, by=by, title="Greeting", body="Hello! How can I help?")
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle())
    conversation_id = handoff["conversation_id"]
    context = await chromium.new_context(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(page, desk.server.url, agent.email)
        await page.goto(f"{desk.server.url}/desk/conversations/{conversation_id}")
        status = page.locator(f"#status-{conversation_id}")
        await expect(status).to_contain_text("in the queue", timeout=TIMEOUT_MS)

        # "?" lists the shortcuts; Escape closes the list.
        await page.keyboard.press("?")
        await expect(page.locator("#shortcuts-help")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(page.locator("#shortcuts-help")).to_be_hidden()

        # "c" claims.
        await page.keyboard.press("c")
        await expect(status).to_contain_text("with Kim Keys", timeout=TIMEOUT_MS)
        reply_box = page.locator(f"#reply-text-{conversation_id}")
        await expect(reply_box).to_be_visible()

        # "/" opens the canned replies; typing filters, the arrows choose, Enter inserts, Escape closes.
        await reply_box.click()
        await page.keyboard.type("/")
        listbox = page.locator(f"#canned-{conversation_id}")
        await expect(listbox).to_be_visible(timeout=TIMEOUT_MS)
        await expect(listbox.locator("[role=option].canned-option")).to_have_count(2)
        await page.keyboard.type("xyz")
        await expect(listbox).to_contain_text("No canned reply matches", timeout=TIMEOUT_MS)
        await page.keyboard.press("Escape")
        await expect(listbox).to_be_hidden()
        await expect(reply_box).to_have_value("/xyz")
        await reply_box.fill("")
        await page.keyboard.type("/wor")  # "working days" is in the body only
        await expect(listbox.locator(".canned-option")).to_have_count(1, timeout=TIMEOUT_MS)
        await expect(listbox.locator(".canned-option").first).to_have_attribute("aria-selected", "true")
        active = await reply_box.get_attribute("aria-activedescendant")
        assert active == f"canned-{conversation_id}-0"
        await page.keyboard.press("Enter")
        await expect(reply_box).to_have_value(REFUND_BODY)
        await expect(listbox).to_be_hidden()

        # Alt+1 inserts the first recommended action; edited and sent with Ctrl+Enter, it counts as "edited".
        await reply_box.fill("")
        await page.keyboard.press("Alt+1")
        await expect(reply_box).to_have_value("Sorry! I've refunded it.")
        await expect(page.locator(f"#reply-form-{conversation_id} input[name=recommendation]")).to_have_value("0")
        await page.keyboard.type(" It shows in 3 days.")
        await page.keyboard.press("Control+Enter")
        timeline = page.locator(f"#timeline-items-{conversation_id}")
        await expect(timeline).to_contain_text("It shows in 3 days.", timeout=TIMEOUT_MS)
        usage = page.locator(f"#recommendation-{conversation_id}-0 .usage-state")
        await expect(usage).to_have_text("edited", timeout=TIMEOUT_MS)
        await expect(reply_box).to_have_value("")
        await expect(reply_box).to_be_focused()
        assert stored_usage(desk, handoff["handoff_id"]) == {"0": "edited"}

        # Internal notes: their own tab, their own look.
        await page.get_by_role("tab", name="Internal note").click()
        note_box = page.locator(f"#note-text-{conversation_id}")
        await expect(note_box).to_be_focused()
        await expect(reply_box).to_be_hidden()
        await page.keyboard.type("Refund approved by finance.")
        await page.keyboard.press("Control+Enter")
        note = timeline.locator(".note").last
        await expect(note).to_contain_text("Refund approved by finance.", timeout=TIMEOUT_MS)
        await expect(note).to_contain_text("Internal note — customers never see this")

        # Alt+Shift+X opens the resolve form with the suggestion from what was done; Alt+Shift+R the return form.
        await page.keyboard.press("Alt+Shift+X")
        resolve_form = page.locator("form.resolve-form")
        await expect(resolve_form).to_be_visible()
        await expect(resolve_form.locator("textarea[name=resolution]")).to_be_focused()
        await expect(resolve_form.locator("select[name=recommendation_feedback]")).to_have_value("edited")
        await page.keyboard.press("Alt+Shift+R")
        await expect(page.locator("form.return-form textarea[name=resolution]")).to_be_focused()
        await expect(resolve_form).to_be_hidden()  # one move's form at a time

        # Laptop: the context beside the conversation, the reply box in view.
        main, side = await _box(page, ".workspace-main"), await _box(page, ".workspace-side")
        assert side["x"] >= main["x"] + main["width"] - 1
        await page.get_by_role("tab", name="Reply").click()
        send = await _box(page, f"#reply-form-{conversation_id} button[type=submit]")
        assert send["y"] + send["height"] <= 768, "the send button is on screen at 1366x768"
        # Tablet: the context moves below the conversation.
        await page.set_viewport_size({"width": 768, "height": 1024})
        main, side = await _box(page, ".workspace-main"), await _box(page, ".workspace-side")
        assert side["y"] >= main["y"] + main["height"] - 1
        assert main["width"] <= 768
        await page.screenshot(path=str(artifacts / "workspace-tablet.png"), full_page=True)

        # Escape (leaving the reply box) then q: back to the queue.
        await reply_box.click()
        await page.keyboard.press("Escape")
        await page.keyboard.press("q")
        await expect(page.locator("#queue")).to_be_visible(timeout=TIMEOUT_MS)
    finally:
        await context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"

    async with desk.api(agent.token) as api:
        conversation = await read(api, conversation_id)
    assert conversation["status"] == "assigned"
    assert [n["text"] for n in conversation["notes"]] == ["Refund approved by finance."]
