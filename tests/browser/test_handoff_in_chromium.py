"""The loop in a real browser: a customer and an agent in two browser contexts, nothing ever reloaded.

ask → the AI escalates → the item appears in the agent's queue → claim → chat both ways, with typing shown both
ways → a recommended action used (and recorded so) → return to the AI with an outcome → the customer sees the AI.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests._support import Desk, context_bundle, create_conversation, escalate, ok, post_message
from tests.browser._support import TIMEOUT_MS, sign_in
from tests.web.test_workspace import stored_usage

APOLOGY = "Sorry about the double charge!"


async def test_customer_and_agent_through_the_whole_loop(
    module_live_desk: Desk, chromium: Browser, artifacts: Path
) -> None:
    # On SQLite with the in-process bus, and on PostgreSQL with Redis (production's shape).
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent", name="Bea Browser")
    base = desk.server.url
    customer_context = await chromium.new_context(viewport={"width": 420, "height": 760})
    agent_context = await chromium.new_context(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    try:
        agent_page = await agent_context.new_page()
        customer_page = await customer_context.new_page()
        for page in (agent_page, customer_page):
            page.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(agent_page, base, agent.email)

        async with desk.api(integration.token) as ai:
            created = await create_conversation(ai, {"name": "Carla Customer"})
            conversation_id = created["id"]
            await customer_page.goto(created["chat_url"])
            messages = customer_page.locator("#chat-messages")
            await customer_page.fill("#chat-text", "I was charged twice. Can a person help?")
            await customer_page.click("#chat-form button[type=submit]")
            await expect(messages).to_contain_text("I was charged twice", timeout=TIMEOUT_MS)

            bundle = context_bundle(conversation_id=conversation_id)
            bundle["recommended_actions"] = [
                {"kind": "reply", "title": "Apologise", "body": APOLOGY, "confidence": 0.8},
                {"kind": "link", "title": "Refund policy", "body": "https://example.com/refunds", "confidence": 0.3},
            ]
            handoff = await escalate(ai, bundle)

            # The queue updates live on the agent's already open page.
            item = agent_page.locator(f"#queue-item-{conversation_id}")
            await expect(item).to_be_visible(timeout=TIMEOUT_MS)
            await item.locator("a.customer").click()
            timeline = agent_page.locator(f"#timeline-items-{conversation_id}")
            await expect(timeline).to_contain_text("Handed to a human: low_confidence", timeout=TIMEOUT_MS)
            await agent_page.locator(f"#status-{conversation_id} button:has-text('Claim')").click()
            status = customer_page.locator("#chat-status")
            await expect(status).to_contain_text("Bea Browser", timeout=TIMEOUT_MS)
            reply_box = agent_page.locator(f"#reply-text-{conversation_id}")
            await expect(reply_box).to_be_visible(timeout=TIMEOUT_MS)

            # Typing, both ways: the agent sees the customer typing, the customer sees the agent typing.
            # (Typed at a human pace: the chat tells the desk at most every 2 s, and it did for the first message.)
            await customer_page.locator("#chat-text").press_sequentially("Which card was it?", delay=150)
            typing_here = agent_page.locator(f"#typing-{conversation_id}")
            await expect(typing_here).to_contain_text("Carla Customer is typing", timeout=TIMEOUT_MS)
            await reply_box.press_sequentially("Let me check")
            await expect(customer_page.locator("#chat-typing")).to_contain_text(
                "Bea Browser is typing", timeout=TIMEOUT_MS
            )
            await reply_box.fill("")

            # A recommended action goes into the reply box with one click, and is sent as it is: "used".
            await agent_page.locator(f"#recommendation-{conversation_id}-0 button.insert-action").click()
            await expect(reply_box).to_have_value(APOLOGY)
            await agent_page.locator(f"#reply-form-{conversation_id} button[type=submit]").click()
            await expect(messages).to_contain_text(APOLOGY, timeout=TIMEOUT_MS)
            used = agent_page.locator(f"#recommendation-{conversation_id}-0 .usage-state")
            await expect(used).to_have_text("used", timeout=TIMEOUT_MS)
            assert stored_usage(desk, handoff["handoff_id"]) == {"0": "used"}

            await customer_page.fill("#chat-text", "Thank you, which card was it?")  # replaces what was typed
            await customer_page.click("#chat-form button[type=submit]")
            await expect(timeline).to_contain_text("which card was it?", timeout=TIMEOUT_MS)
            await expect(typing_here).to_be_empty(timeout=TIMEOUT_MS)
            await reply_box.fill("The Visa ending 4242.")
            await reply_box.press("Control+Enter")
            await expect(messages).to_contain_text("The Visa ending 4242.", timeout=TIMEOUT_MS)
            await expect(timeline).to_contain_text("The Visa ending 4242.", timeout=TIMEOUT_MS)
            await agent_page.screenshot(path=str(artifacts / "workspace.png"))

            # Hand back to the AI with an outcome (the feedback starts as what was done); the AI carries on.
            await agent_page.locator("summary:has-text('Return to AI')").click()
            form = agent_page.locator("form.return-form")
            await expect(form.locator("select[name=recommendation_feedback]")).to_have_value("used")
            await form.locator("textarea[name=resolution]").fill("Refunded the second charge")
            await form.locator("textarea[name=note_for_ai]").fill("Refund done, card ending 4242.")
            await form.locator("input[name=tags]").fill("refund, duplicate-charge")
            await form.locator("button[type=submit]").click()
            await expect(messages).to_contain_text("back with the assistant", timeout=TIMEOUT_MS)
            await expect(agent_page.locator(f"#status-{conversation_id}")).to_contain_text(
                "with the AI", timeout=TIMEOUT_MS
            )
            await post_message(ai, conversation_id, "Anything else I can do for you?")
            await expect(messages).to_contain_text("Anything else I can do for you?", timeout=TIMEOUT_MS)
            await customer_page.screenshot(path=str(artifacts / "chat.png"))

            conversation = (await ai.get(f"/api/v1/conversations/{conversation_id}")).json()
            assert conversation["status"] == "bot"
            texts = [m["text"] for m in conversation["messages"]]
            assert texts.count(APOLOGY) == 1

        assert stored_usage(desk, handoff["handoff_id"]) == {"0": "used", "1": "ignored"}
        async with desk.api(agent.token) as staff:
            entries = ok(await staff.get("/api/v1/learning-log"))["items"]
        entry = next(e for e in entries if e["conversation_id"] == conversation_id)
        assert entry["recommendation_usage"] == {"0": "used", "1": "ignored"}
        assert (entry["recommendation_feedback"], entry["tags"]) == ("used", ["refund", "duplicate-charge"])
    finally:
        await customer_context.close()
        await agent_context.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"
