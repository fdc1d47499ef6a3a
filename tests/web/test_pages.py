"""The HTML pages on a real server, driven like a browser: login with the session cookie, CSRF tokens, htmx
requests answered with partials, escaping of everything user-supplied, the CSP, the customer's chat page."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
from markupsafe import escape

from tests._support import (
    HTTP_TIMEOUT_S,
    Desk,
    Server,
    Staff,
    check_response,
    claim,
    context_bundle,
    escalate,
    new_customer,
    ok,
    read,
)

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
XSS_NAME = '<script>alert("name")</script>Mallory'
XSS_TEXT = "<img src=x onerror=alert(1)> & </p><b hx-get=/logout>"


async def _check(response: httpx.Response) -> None:
    await response.aread()
    check_response(response)


class Browser:
    """A browser's view of the desk: cookies, the session's CSRF token, and htmx-style requests."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.client = httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT_S, event_hooks={"response": [_check]})
        self.csrf = ""

    async def login(self, email: str, password: str) -> httpx.Response:
        form = await self.client.get("/login")
        assert form.status_code == 200, form.text
        response = await self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": csrf_field(form.text)}
        )
        if response.status_code == 303:
            self.csrf = csrf_meta((await self.get("/desk")).text)
        return response

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return await self.client.get(path, headers=headers)

    async def htmx_post(self, path: str, data: dict[str, str] | None = None, **headers: str) -> httpx.Response:
        sent = {"HX-Request": "true", "X-CSRF-Token": self.csrf, **headers}
        return await self.client.post(path, data=data or {}, headers=sent)

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.client.cookies.items())


@contextlib.asynccontextmanager
async def browser(server: Server, staff: Staff | None = None) -> AsyncIterator[Browser]:
    """A browser, signed in as `staff` when given."""
    opened = Browser(server)
    try:
        if staff is not None:
            response = await opened.login(staff.email, staff.password)
            assert response.status_code == 303, response.text
        yield opened
    finally:
        await opened.client.aclose()


def csrf_meta(page: str) -> str:
    found = CSRF_META.search(page)
    assert found, f"no CSRF meta tag in {page[:500]}"
    return found.group(1)


def csrf_field(page: str) -> str:
    found = CSRF_FIELD.search(page)
    assert found, f"no CSRF field in {page[:500]}"
    return found.group(1)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Markup()
    parser.feed(page)
    parser.close()
    return parser.tags


def assert_no_inline_code(page: str) -> None:
    """What the CSP forbids is not in the markup: inline scripts, event handler attributes, style attributes; and
    no element came out of user content (every tag is one of the templates')."""
    for tag, attrs in tags_of(page):
        assert tag != "script" or attrs.get("src"), f"inline script: {attrs}"
        assert tag not in ("img", "b", "i", "iframe", "object", "style"), f"unexpected <{tag}> {attrs}"
        for name in attrs:
            assert not name.startswith("on"), f"event handler attribute on <{tag}>: {attrs}"
            assert name != "style", f"style attribute on <{tag}>: {attrs}"


async def queued(desk: Desk, **overrides: Any) -> dict[str, Any]:
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        return await escalate(ai, context_bundle(**overrides))


# --- signing in --------------------------------------------------------------------------------------------------


async def test_login_sets_a_rotated_session_and_logout_clears_it(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    async with browser(desk.server) as page:
        first = await page.get("/")
        assert (first.status_code, first.headers["location"]) == (303, "/login")
        anonymous = await page.get("/desk")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login")

        form = await page.get("/login")
        before = csrf_field(form.text)
        cookie_before = page.client.cookies.get("desk_session")
        wrong = await page.client.post(
            "/login", data={"email": agent.email, "password": "not the password", "csrf_token": before}
        )
        assert wrong.status_code == 401
        assert "Wrong email or password." in wrong.text
        assert (await page.get("/desk")).status_code == 303

        signed = await page.login(agent.email, agent.password)
        assert (signed.status_code, signed.headers["location"]) == (303, "/desk")
        assert page.client.cookies.get("desk_session") != cookie_before
        assert page.csrf
        assert page.csrf != before, "the CSRF token must change on login"
        desk_page = await page.get("/desk")
        assert desk_page.status_code == 200
        assert str(escape(agent.name)) in desk_page.text
        assert (await page.get("/")).headers["location"] == "/desk"

        refused = await page.client.post("/logout", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert (await page.get("/desk")).status_code == 200
        out = await page.client.post("/logout", data={"csrf_token": page.csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert (await page.get("/desk")).status_code == 303


async def test_login_needs_the_forms_csrf_token(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    async with browser(desk.server) as page:
        await page.get("/login")
        response = await page.client.post("/login", data={"email": agent.email, "password": agent.password})
        assert response.status_code == 403
        assert (await page.get("/desk")).status_code == 303


async def test_htmx_request_without_session_is_told_to_sign_in(module_desk: Desk) -> None:
    async with browser(module_desk.server) as page:
        response = await page.get("/desk/queue", **{"HX-Request": "true"})
        assert response.status_code == 401
        assert response.headers["HX-Redirect"] == "/login"


# --- the queue and a conversation --------------------------------------------------------------------------------


async def test_desk_shows_the_queue_and_my_conversations(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    waiting = await queued(desk, customer=new_customer("Grace Hopper"))
    mine = await queued(desk, customer=new_customer("Alan Turing"))
    async with desk.api(agent.token) as staff:
        await claim(staff, mine["conversation_id"])
    async with browser(desk.server, agent) as page:
        response = await page.get("/desk")
        assert response.status_code == 200
        text = response.text
        queue = text[text.index('id="queue"') : text.index('id="my-conversations"')]
        item = re.search(rf'<li id="queue-item-{waiting["conversation_id"]}".*?</li>', queue, re.DOTALL)
        assert item, queue
        for shown in ("Grace Hopper", "low_confidence", "31%", "high", "billing", "Customer was charged twice"):
            assert shown in item.group(0), f"{shown!r} missing from the queue item: {item.group(0)}"
        assert re.search(r'class="position"[^>]*>#\d+<', item.group(0))
        assert "waiting" in item.group(0)
        assert mine["conversation_id"] not in queue
        my_section = text[text.index('id="my-conversations"') :]
        assert "Alan Turing" in my_section
        assert f"/desk/conversations/{mine['conversation_id']}" in my_section
        assert 'ws-connect="/ws/ui"' in text

        fragment = await page.get("/desk/queue", **{"HX-Request": "true"})
        assert fragment.text.lstrip().startswith('<section id="queue"')
        assert "Grace Hopper" in fragment.text


async def test_conversation_page_claim_reply_note_and_return(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with browser(desk.server, agent) as page, desk.chat(handoff["customer_token"]) as customer:
        shown = (await page.get(base)).text
        for part in ("Refund outside the policy window", "refund_request", "negative", "Apologise and refund"):
            assert part in shown, part
        assert 'data-insert="Sorry! I&#39;ve refunded it."' in shown
        assert f'data-target="reply-text-{conversation_id}"' in shown
        assert 'class="tag tag-ai"' in shown, "AI turns are marked"
        assert f'ws-connect="/ws/ui?conversation={conversation_id}"' in shown

        claimed = await page.htmx_post(f"{base}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.text.startswith(f'<section id="status-{conversation_id}"')
        assert f'<section id="composer-{conversation_id}" class="composer" hx-swap-oob="true">' in claimed.text
        assert f'id="reply-text-{conversation_id}"' in claimed.text

        replied = await page.htmx_post(f"{base}/reply", {"text": "Refund on its way.", "client_id": "c-1"})
        assert replied.status_code == 200, replied.text
        assert f'<div id="timeline-items-{conversation_id}" hx-swap-oob="beforeend">' in replied.text
        assert "Refund on its way." in replied.text
        again = await page.htmx_post(f"{base}/reply", {"text": "Refund on its way.", "client_id": "c-1"})
        assert again.status_code == 200
        await customer.message("Refund on its way.")

        noted = await page.htmx_post(f"{base}/note", {"text": "Checked with finance."})
        assert noted.status_code == 200
        assert 'class="note"' in noted.text
        assert "Checked with finance." in noted.text

        bad = await page.htmx_post(f"{base}/return", {"recommendation_feedback": "loved it"})
        assert bad.status_code == 422
        assert 'class="error"' in bad.text

        returned = await page.htmx_post(
            f"{base}/return",
            {
                "resolution": "Refunded",
                "recommendation_feedback": "edited",
                "note_for_ai": "Refund done.",
                "tags": "refund, duplicate ,",
            },
        )
        assert returned.status_code == 200, returned.text
        assert "with the AI" in returned.text
        await customer.status("bot")
        assert "Checked with finance." not in str(customer.frames), "an internal note reached the customer"

    async with desk.api(agent.token) as staff:
        conversation = await read(staff, conversation_id)
        assert conversation["status"] == "bot"
        assert [m["text"] for m in conversation["messages"]].count("Refund on its way.") == 1
        assert [n["text"] for n in conversation["notes"]] == ["Checked with finance."]
        entries = ok(await staff.get("/api/v1/learning-log"))["items"]
        entry = next(e for e in entries if e["conversation_id"] == conversation_id)
        assert entry["recommendation_feedback"] == "edited"
        assert entry["tags"] == ["refund", "duplicate"]
        assert entry["note_for_ai"] == "Refund done."


async def test_resolve_and_plain_form_posts_redirect(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    base = f"/desk/conversations/{handoff['conversation_id']}"
    async with browser(desk.server, agent) as page:
        token = csrf_field((await page.get(base)).text)
        claimed = await page.client.post(f"{base}/claim", data={"csrf_token": token})
        assert (claimed.status_code, claimed.headers["location"]) == (303, base)
        resolved = await page.client.post(f"{base}/resolve", data={"csrf_token": token, "resolution": "Done"})
        assert (resolved.status_code, resolved.headers["location"]) == (303, base)
    async with desk.api(agent.token) as staff:
        assert (await read(staff, handoff["conversation_id"]))["status"] == "resolved"


async def test_a_lost_claim_says_who_won(module_desk: Desk) -> None:
    desk = module_desk
    winner = desk.staff("agent", name="Winnie Winner")
    loser = desk.staff("agent")
    handoff = await queued(desk)
    base = f"/desk/conversations/{handoff['conversation_id']}"
    async with browser(desk.server, loser) as page:
        assert (await page.get(base)).status_code == 200
        async with desk.api(winner.token) as staff:
            await claim(staff, handoff["conversation_id"])
        lost = await page.htmx_post(f"{base}/claim")
        assert lost.status_code == 409
        assert "Already claimed by Winnie Winner." in lost.text
        assert "Claim</button>" not in lost.text
        assert "Refund outside the policy window" not in lost.text
        assert (await page.get(base)).status_code == 404


async def test_posts_without_the_csrf_token_or_from_elsewhere_change_nothing(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    base = f"/desk/conversations/{handoff['conversation_id']}"
    async with browser(desk.server, agent) as page:
        missing = await page.client.post(f"{base}/claim", headers={"HX-Request": "true"})
        forged = await page.client.post(f"{base}/claim", data={"csrf_token": "forged"})
        elsewhere = await page.htmx_post(f"{base}/claim", Origin="https://evil.example")
        for response in (missing, forged, elsewhere):
            assert response.status_code == 403, response.text
        assert missing.headers.get("HX-Retarget") == "#flash"
    async with desk.api(agent.token) as staff:
        assert (await read(staff, handoff["conversation_id"]))["status"] == "queued"


async def test_unknown_conversation_is_a_404_page(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page:
        response = await page.get("/desk/conversations/" + "0" * 32)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        claim_response = await page.htmx_post("/desk/conversations/" + "0" * 32 + "/claim")
        assert claim_response.status_code == 404


# --- safety of what is shown ---------------------------------------------------------------------------------------


async def test_user_content_is_escaped_everywhere(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent", name='Agent <b onmouseover="x()">Bold</b>')
    bundle_overrides = {
        "customer": {**new_customer(XSS_NAME), "attributes": {"plan": XSS_TEXT}},
        "summary": XSS_TEXT,
        "recommended_actions": [{"kind": "reply", "title": XSS_TEXT, "body": XSS_TEXT, "confidence": 0.5}],
        "transcript": [{"role": "customer", "text": XSS_TEXT}],
    }
    handoff = await queued(desk, **bundle_overrides)
    base = f"/desk/conversations/{handoff['conversation_id']}"
    async with desk.chat(handoff["customer_token"]) as customer:
        await customer.say(XSS_TEXT + " from the chat")
    async with browser(desk.server, agent) as page:
        pages = [(await page.get("/desk")).text, (await page.get(base)).text]
        claimed = await page.htmx_post(f"{base}/claim")
        replied = await page.htmx_post(f"{base}/reply", {"text": XSS_TEXT})
        noted = await page.htmx_post(f"{base}/note", {"text": XSS_TEXT})
        pages += [claimed.text, replied.text, noted.text, (await page.get(base)).text]
    for text in pages:
        assert "<script>alert" not in text
        assert "<img src=x" not in text
        assert "<b hx-get" not in text
        assert "<b onmouseover" not in text
        assert_no_inline_code(text)
    assert str(escape(XSS_NAME)) in pages[0]
    assert str(escape(XSS_NAME)) in pages[1]
    assert str(escape(XSS_TEXT + " from the chat")) in pages[-1]
    assert str(escape(XSS_TEXT)) in pages[3]
    assert str(escape(XSS_TEXT)) in pages[4]
    assert "&lt;b onmouseover=" in pages[2], "staff names are escaped too"
    # Containers of user content are not processed by htmx.
    assert re.search(r'<ol id="timeline-items-[0-9a-f]+" class="timeline-items" hx-disable', pages[-1])
    assert re.search(r'<section id="bundle-[0-9a-f]+" class="panel bundle" hx-disable', pages[-1])
    assert '<div class="queue-detail" hx-disable>' in pages[0]


async def test_every_page_has_a_strict_content_security_policy(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    async with browser(desk.server) as anonymous:
        responses = [
            await anonymous.get("/login"),
            await anonymous.get(f"/chat/{handoff['customer_token']}"),
            await anonymous.get("/chat/dskc_not-a-token"),
        ]
    async with browser(desk.server, agent) as page:
        responses += [
            await page.get("/desk"),
            await page.get(f"/desk/conversations/{handoff['conversation_id']}"),
            await page.get("/desk/conversations/unknown"),
        ]
    for response in responses:
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy, response.request.url
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        # The customer chat may be framed by the sites that embed the widget (DESK_WIDGET_ORIGINS, default any).
        expected = "frame-ancestors *" if "/chat/" in str(response.request.url) else "frame-ancestors 'none'"
        assert expected in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert_no_inline_code(response.text)


async def test_chat_page_for_a_known_token_and_404_for_others(module_desk: Desk) -> None:
    desk = module_desk
    handoff = await queued(desk)
    async with browser(desk.server) as page:
        good = await page.get(f"/chat/{handoff['customer_token']}")
        assert good.status_code == 200
        assert '<script src="/static/chat.js" defer></script>' in good.text
        assert f'data-token="{handoff["customer_token"]}"' in good.text
        assert good.headers["referrer-policy"] == "no-referrer"
        for bad in ("dskc_not-a-token", handoff["customer_token"] + "x", "x" * 5000):
            response = await page.get(f"/chat/{bad}")
            assert response.status_code == 404
            assert "not valid" in response.text


async def test_static_scripts_and_styles_are_served(module_desk: Desk) -> None:
    async with browser(module_desk.server) as page:
        for path in ("/static/desk.js", "/static/chat.js", "/static/desk.css", "/static/vendor/htmx.min.js"):
            response = await page.get(path)
            assert response.status_code == 200, path
        chat_js = (await page.get("/static/chat.js")).text
        assert "innerHTML" not in chat_js
