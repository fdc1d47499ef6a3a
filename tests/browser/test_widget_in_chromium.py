"""The embeddable widget in Chromium: one script tag (here twice) in a plain host page on another origin, with
hostile CSS, a strict CSP of its own and globals of its own; the customer chats with a real (small) AI, is queued,
an agent joins and hands back, and the customer rates the agent, all inside the widget's frame."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, FloatRect, Frame, Page, expect

from tests._support import Desk, claim, create_conversation, outcome, post_message
from tests.browser._chat_support import AI_HANDOFF_REPLY, AI_REPLY, AI_WELCOME_BACK, eventually, serve_ai
from tests.browser._support import TIMEOUT_MS

HOSTILE_CSS = """
* { color: red !important; font-size: 40px !important; font-family: serif !important;
    line-height: 3 !important; letter-spacing: 4px !important; }
body > div { display: none !important; position: static !important; opacity: 0.1 !important; }
button, iframe, section { display: none !important; border: 9px solid lime !important; }
"""
# The host's own scripts: globals the widget must leave alone, and a record of what it finds.
HOST_JS = """
window.Desk = { owner: "host" };
window.$ = function () { return "host's $"; };
window.hostViolations = [];
window.hostGlobals = Object.getOwnPropertyNames(window).concat(["hostGlobals"]);
document.addEventListener("securitypolicyviolation", function (event) {
  window.hostViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
HOST_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>A plain shop</title>
<link rel="stylesheet" href="/host.css">
<script src="/host.js"></script>
</head>
<body>
<h1>A plain shop</h1>
<p>Nothing to see here but the chat.</p>
{tags}
</body>
</html>
"""


@dataclass
class HostSite:
    url: str


@contextmanager
def serve_host(desk_url: str, tags: str) -> Iterator[HostSite]:
    """A plain site on its own origin, with a strict CSP that lets in the desk's script and frame only."""
    files = {
        "/": ("text/html", HOST_PAGE.format(tags=tags)),
        "/host.css": ("text/css", HOSTILE_CSS),
        "/host.js": ("text/javascript", HOST_JS),
    }
    policy = (
        f"default-src 'self'; script-src 'self' {desk_url}; frame-src {desk_url}; style-src 'self'; "
        "img-src 'self'; connect-src 'self'"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind, body = files.get(self.path, ("text/plain", "not found"))
            payload = body.encode()
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Content-Security-Policy", policy)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostSite(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Problems:
    """JavaScript errors and console errors of the host page and of the widget's frame."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "favicon" not in message.text and "404" not in message.text:
            self.errors.append(message.text)


async def chat_frame(page: Page) -> Frame:
    async def found() -> Frame | None:
        return next((frame for frame in page.frames if "/chat/" in frame.url), None)

    frame: Frame = await eventually(found, "the widget's chat frame")
    await frame.wait_for_load_state()
    return frame


async def widget_box(page: Page) -> FloatRect:
    box = await page.locator("[data-desk-chat-widget]").bounding_box()
    assert box is not None, "the widget is not displayed"
    return box


async def open_widget(page: Page) -> None:
    # The launcher is in a closed shadow root: a customer finds it by its place and clicks it.
    box = await widget_box(page)
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


async def say(frame: Frame, text: str) -> None:
    await frame.fill("#chat-text", text)
    await frame.press("#chat-text", "Enter")


async def new_host_page(context: BrowserContext, host: HostSite) -> tuple[Page, Problems]:
    page = await context.new_page()
    problems = Problems(page)
    await page.goto(host.url)
    await expect(page.locator("[data-desk-chat-widget]")).to_have_count(1, timeout=TIMEOUT_MS)
    return page, problems


async def test_the_widget_in_a_hostile_host_page(desk: Desk, chromium: Browser, artifacts: Path) -> None:
    agent = desk.staff("agent", name="Ada Agent")
    with serve_ai() as ai_server:
        integration = desk.integration(webhook_url=ai_server.url)
        async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
            created = await create_conversation(ai)
            cid = created["id"]
            # The same tag twice (a site that includes its footer twice): one launcher all the same.
            src = f"{desk.server.url}/static/widget.js"
            tag = f'<script src="{src}" data-chat-url="{created["chat_url"]}" async></script>'
            with serve_host(desk.server.url, tag + "\n" + tag) as host:
                context = await chromium.new_context(viewport={"width": 1280, "height": 860})
                try:
                    page, problems = await new_host_page(context, host)
                    await check_isolation(page)
                    launcher = await widget_box(page)
                    assert max(launcher["width"], launcher["height"]) < 80, launcher
                    assert launcher["x"] > 1000, "on the right by default"

                    await open_widget(page)
                    frame = await chat_frame(page)
                    assert "embed=1" in frame.url
                    messages, status = frame.locator("#chat-messages"), frame.locator("#chat-status")
                    await expect(status).to_have_text("You're chatting with the assistant.", timeout=TIMEOUT_MS)
                    panel = await widget_box(page)
                    assert panel["width"] > 300, panel
                    assert panel["height"] > 400, panel

                    await say(frame, "What are your opening hours?")
                    await expect(messages).to_contain_text(AI_REPLY, timeout=TIMEOUT_MS)
                    await say(frame, "Can I talk to a person, please?")
                    await expect(messages).to_contain_text(AI_HANDOFF_REPLY, timeout=TIMEOUT_MS)
                    await expect(status).to_contain_text("You're number 1 in line", timeout=TIMEOUT_MS)

                    await claim(staff, cid)
                    await expect(status).to_have_text("You're now chatting with Ada Agent.", timeout=TIMEOUT_MS)
                    await post_message(staff, cid, "Hi, Ada here. How can I help?")
                    await expect(messages).to_contain_text("Hi, Ada here.", timeout=TIMEOUT_MS)
                    await say(frame, "My parcel is late.")
                    await expect(messages.locator("li[data-seq]", has_text="My parcel is late.")).to_have_count(1)

                    handed_back = await staff.post(f"/api/v1/conversations/{cid}/return", json=outcome())
                    assert handed_back.status_code == 200, handed_back.text
                    await expect(status).to_have_text("You're back with the assistant.", timeout=TIMEOUT_MS)
                    await expect(messages).to_contain_text("You're back with the assistant.")
                    rating = frame.locator("#chat-rating")
                    await expect(rating.locator("legend")).to_have_text("How did Ada Agent do?")
                    await rating.locator("label[for=chat-star-5]").click()
                    await rating.locator("button[type=submit]").click()
                    await expect(rating).to_contain_text("Thanks for your feedback")
                    await say(frame, "I'm back, thanks!")
                    await expect(messages).to_contain_text(AI_WELCOME_BACK, timeout=TIMEOUT_MS)
                    await page.screenshot(path=str(artifacts / "widget.png"))

                    # Escape in the chat closes the panel; what arrives while it is closed waits behind the launcher.
                    await frame.press("#chat-text", "Escape")
                    await eventually(lambda: _closed(page), "the panel to close")
                    await post_message(ai, cid, "One more thing: your parcel has left the depot.")
                    await expect(messages).to_contain_text("left the depot", timeout=TIMEOUT_MS)
                    await eventually(lambda: _launcher_named(page, "Open chat: Chat with us (1 new)"), "a badge")
                    await open_widget(page)
                    await expect(frame.locator("#chat-text")).to_be_visible()
                    await check_isolation(page)
                    assert problems.errors == [], f"errors on the host page or in the widget: {problems.errors}"
                finally:
                    await context.close()
            entries = (await staff.get("/api/v1/learning-log")).json()["items"]
            assert [e["csat"] for e in entries if e["conversation_id"] == cid] == [5]
            assert len(ai_server.turns) == 3, "one turn for each message the customer wrote while the AI held it"


async def _launcher_named(page: Page, name: str) -> bool:
    """What assistive technology announces for the launcher (the accessibility tree reaches closed shadow roots,
    Playwright's selectors do not)."""
    session = await page.context.new_cdp_session(page)
    try:
        tree = await session.send("Accessibility.getFullAXTree")
    finally:
        await session.detach()
    buttons = [n for n in tree["nodes"] if n.get("role", {}).get("value") == "button"]
    return any(n.get("name", {}).get("value") == name for n in buttons)


async def _closed(page: Page) -> bool:
    box = await widget_box(page)
    return box["height"] < 80


async def check_isolation(page: Page) -> None:
    """The host's rules do not reach the widget, the widget leaves the host's globals and CSP alone."""
    host = page.locator("[data-desk-chat-widget]")
    style = await host.evaluate(
        "node => { const s = getComputedStyle(node); return [s.display, s.position, s.fontSize, s.color, s.opacity]; }"
    )
    display, position, font_size, color, opacity = style
    assert (display, position, opacity) == ("block", "fixed", "1"), style
    assert font_size != "40px", style
    assert color != "rgb(255, 0, 0)", style
    found: dict[str, Any] = await page.evaluate(
        """() => ({
            added: Object.getOwnPropertyNames(window).filter(name => !window.hostGlobals.includes(name)),
            desk: window.Desk, dollar: window.$(), violations: window.hostViolations,
            api: typeof window.DeskChatWidget.open,
        })"""
    )
    assert found["added"] == ["DeskChatWidget"], found["added"]
    assert (found["desk"], found["dollar"]) == ({"owner": "host"}, "host's $")
    assert found["api"] == "function"
    assert found["violations"] == [], found["violations"]


async def test_the_widget_fills_a_phone_screen_and_opens_by_itself(desk: Desk, chromium: Browser) -> None:
    async with desk.api(desk.integration().token) as ai:
        created = await create_conversation(ai)
    # The desk named only by the script's own src; open at once, on the left.
    tag = (
        f'<script src="{desk.server.url}/static/widget.js" data-token="{created["customer_token"]}" '
        'data-title="Help from the shop" data-position="left" data-open="true" async></script>'
    )
    with serve_host(desk.server.url, tag) as host:
        context = await chromium.new_context(viewport={"width": 375, "height": 700}, is_mobile=True)
        try:
            page = await context.new_page()
            problems = Problems(page)
            await page.goto(host.url)
            frame = await chat_frame(page)
            assert f"/chat/{created['customer_token']}" in frame.url
            await expect(frame.locator("#chat-status")).to_have_text("You're chatting with the assistant.")
            box = await widget_box(page)
            assert (box["width"], box["height"]) == (375, 700), box
            await say(frame, "Hello from a phone")
            await expect(frame.locator("li[data-seq]", has_text="Hello from a phone")).to_have_count(1)
            composer = await frame.locator("#chat-text").bounding_box()
            assert composer is not None
            assert 0 <= composer["x"] < composer["x"] + composer["width"] <= 375, composer
            assert problems.errors == [], problems.errors
        finally:
            await context.close()
