"""The customer's chat page over HTTP: who may frame it (DESK_WIDGET_ORIGINS), the embed mode, the 404 page, the
accessible markup static/chat.js relies on, and the widget script being served."""

from __future__ import annotations

import httpx

from tests._support import Desk, ServerPool, context_bundle, create_conversation, escalate, read
from tests.web.test_pages import assert_no_inline_code, browser, tags_of

WIDGET_ORIGINS = ",".join(
    ["https://shop.example", " http://localhost:8080", "https://*.brand.example", " https://evil.example; script-src *"]
)


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parts = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: value for name, value in parts}


def assert_strict_chat_headers(response: httpx.Response, frame_ancestors: str) -> None:
    policy = directives(response)
    assert policy["frame-ancestors"] == frame_ancestors, response.headers["content-security-policy"]
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    # X-Frame-Options cannot say "these sites": it would contradict frame-ancestors, so it is not sent.
    assert "x-frame-options" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def new_chat(desk: Desk) -> dict[str, str]:
    async with desk.api(desk.integration().token) as ai:
        created: dict[str, str] = await create_conversation(ai)
        return created


async def test_any_site_may_frame_the_chat_by_default_and_no_site_the_desk(module_desk: Desk) -> None:
    desk = module_desk
    created = await new_chat(desk)
    async with browser(desk.server) as anonymous:
        page = await anonymous.get(f"/chat/{created['customer_token']}")
        embedded = await anonymous.get(f"/chat/{created['customer_token']}?embed=1")
        missing = await anonymous.get("/chat/dskc_not-a-token?embed=1")
        login = await anonymous.get("/login")
    for response in (page, embedded):
        assert response.status_code == 200
        assert_strict_chat_headers(response, "*")
        assert_no_inline_code(response.text)
    assert missing.status_code == 404
    assert_strict_chat_headers(missing, "*")  # a stale widget link shows the error, not a refused frame
    assert "This chat link is not valid" in missing.text
    assert directives(login)["frame-ancestors"] == "'none'"


async def test_widget_origins_name_who_may_frame_the_chat(database_url: str, server: ServerPool) -> None:
    desk = Desk(server(database_url, env={"DESK_WIDGET_ORIGINS": WIDGET_ORIGINS}))
    created = await new_chat(desk)
    # The desk itself, then the listed origins; the entry that tried to smuggle in a directive is dropped.
    expected = "'self' https://shop.example http://localhost:8080 https://*.brand.example"
    async with browser(desk.server) as anonymous:
        for path in (f"/chat/{created['customer_token']}", f"/chat/{created['customer_token']}?embed=1"):
            response = await anonymous.get(path)
            assert response.status_code == 200
            assert_strict_chat_headers(response, expected)
        for bad in ("dskc_not-a-token", created["customer_token"] + "x", "x" * 5000):
            response = await anonymous.get(f"/chat/{bad}")
            assert response.status_code == 404
            assert_strict_chat_headers(response, expected)
        login = await anonymous.get("/login")
        assert directives(login)["frame-ancestors"] == "'none'"


async def test_the_page_is_an_accessible_chat_and_embed_mode_drops_the_chrome(module_desk: Desk) -> None:
    desk = module_desk
    async with desk.api(desk.integration().token) as ai:
        handoff = await escalate(ai, context_bundle())
        last_seq = (await read(ai, handoff["conversation_id"]))["messages"][-1]["seq"]
    async with browser(desk.server) as anonymous:
        plain = await anonymous.get(f"/chat/{handoff['customer_token']}")
        embedded = await anonymous.get(f"/chat/{handoff['customer_token']}?embed=1")
        other = await anonymous.get(f"/chat/{handoff['customer_token']}?embed=yes")
    for response in (plain, embedded):
        tags = {attrs.get("id"): (tag, attrs) for tag, attrs in tags_of(response.text) if attrs.get("id")}
        log = tags["chat-messages"][1]
        assert log["role"] == "log"
        assert log["aria-live"] == "polite"
        assert "hx-disable" in log
        assert tags["chat-status"][1]["role"] == "status"
        assert tags["chat-text"][0] == "textarea"
        labels = [attrs for tag, attrs in tags_of(response.text) if tag == "label"]
        assert any(label.get("for") == "chat-text" for label in labels), "the message box has no label"
        assert "hidden" in tags["chat-rating"][1]
        assert {f"chat-star-{score}" for score in range(1, 6)} <= set(tags)
        # The seq the page was rendered at: what arrives later counts as new for the widget's badge.
        assert tags["chat"][1]["data-last-seq"] == str(last_seq)
        assert '<link rel="stylesheet" href="/static/chat.css">' in response.text
        assert '<script src="/static/chat.js" defer></script>' in response.text
    assert 'class="chat-page chat-embed"' in embedded.text
    assert 'data-embed="1"' in embedded.text
    assert '<h1 class="visually-hidden">' in embedded.text
    for response in (plain, other):
        assert "chat-embed" not in response.text
        assert 'data-embed="1"' not in response.text
        assert "<h1>Chat with us</h1>" in response.text


async def test_the_widget_and_chat_assets_are_served(module_desk: Desk) -> None:
    async with module_desk.api() as anonymous:
        widget = await anonymous.get("/static/widget.js")
        script = await anonymous.get("/static/chat.js")
        styles = await anonymous.get("/static/chat.css")
    assert widget.status_code == 200
    assert "javascript" in widget.headers["content-type"]
    assert "attachShadow" in widget.text
    assert "innerHTML" not in widget.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text
    assert styles.status_code == 200
    assert styles.headers["content-type"].startswith("text/css")
