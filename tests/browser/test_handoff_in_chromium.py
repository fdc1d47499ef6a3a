"""The loop in a real browser: a customer and an agent in two browser contexts, nothing ever reloaded."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests._support import Desk, context_bundle, create_conversation, escalate, post_message
from tests.browser._support import TIMEOUT_MS, sign_in


async def test_customer_and_agent_through_the_whole_loop(desk: Desk, chromium: Browser, artifacts: Path) -> None:
    integration = desk.integration()
    agent = desk.staff("agent", name="Bea Browser")
    base = desk.server.url
    customer_context = await chromium.new_context(viewport={"width": 420, "height": 760})
    agent_context = await chromium.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    try:
        agent_page = await agent_context.new_page()
        customer_page = await customer_context.new_page()
        for page in (agent_page, customer_page):
            page.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(agent_page, base, agent.email)

        async with desk.api(integration.token) as ai:
            created = await create_conversation(ai, {"name": "Carla Customer"})
            await customer_page.goto(created["chat_url"])
            messages = customer_page.locator("#chat-messages")
            await customer_page.fill("#chat-text", "I was charged twice. Can a person help?")
            await customer_page.click("#chat-form button[type=submit]")
            await expect(messages).to_contain_text("I was charged twice", timeout=TIMEOUT_MS)

            bundle = context_bundle(conversation_id=created["id"])
            bundle["recommended_actions"] = [
                {"kind": "reply", "title": "Apologise", "body": "Sorry about the double charge!", "confidence": 0.8}
            ]
            await escalate(ai, bundle)

            # The queue updates live on the agent's already open page.
            item = agent_page.locator(f"#queue-item-{created['id']}")
            await expect(item).to_be_visible(timeout=TIMEOUT_MS)
            await item.locator("a.customer").click()
            await agent_page.locator("button:has-text('Claim')").click()
            status = customer_page.locator("#chat-status")
            await expect(status).to_contain_text("Bea Browser", timeout=TIMEOUT_MS)

            # A recommended action goes into the reply box with one click, and is sent.
            await agent_page.locator("button.insert-action").first.click()
            reply_box = agent_page.locator(f"#reply-text-{created['id']}")
            await expect(reply_box).to_have_value("Sorry about the double charge!")
            await agent_page.locator(f"#reply-form-{created['id']} button[type=submit]").click()
            await expect(messages).to_contain_text("Sorry about the double charge!", timeout=TIMEOUT_MS)

            await customer_page.fill("#chat-text", "Thank you, which card was it?")
            await customer_page.click("#chat-form button[type=submit]")
            timeline = agent_page.locator(f"#timeline-items-{created['id']}")
            await expect(timeline).to_contain_text("which card was it?", timeout=TIMEOUT_MS)
            await agent_page.screenshot(path=str(artifacts / "workspace.png"))

            # Hand back to the AI with an outcome; the AI carries on in the same chat.
            await agent_page.locator("summary:has-text('Return to AI')").click()
            form = agent_page.locator("form.return-form")
            await form.locator("textarea[name=resolution]").fill("Refunded the second charge")
            await form.locator("select[name=recommendation_feedback]").select_option("used")
            await form.locator("textarea[name=note_for_ai]").fill("Refund done, card ending 4242.")
            await form.locator("button[type=submit]").click()
            await expect(messages).to_contain_text("back with the assistant", timeout=TIMEOUT_MS)
            await post_message(ai, created["id"], "Anything else I can do for you?")
            await expect(messages).to_contain_text("Anything else I can do for you?", timeout=TIMEOUT_MS)
            await customer_page.screenshot(path=str(artifacts / "chat.png"))

            conversation = (await ai.get(f"/api/v1/conversations/{created['id']}")).json()
            assert conversation["status"] == "bot"
            texts = [m["text"] for m in conversation["messages"]]
            assert texts.count("Sorry about the double charge!") == 1
    finally:
        await customer_context.close()
        await agent_context.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"
