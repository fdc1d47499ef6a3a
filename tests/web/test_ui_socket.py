"""The desk's live socket `/ws/ui`: HTML fragments pushed out of band, to whom, and who is refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from markupsafe import escape
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests._support import RECV_TIMEOUT_S, Desk, claim, context_bundle, escalate, new_customer, post_message
from tests.web.test_pages import XSS_TEXT, Browser, browser

QUIET_S = 1.0


class UiSocket:
    """The page's socket: keeps every fragment, so tests wait for one and later check what else came."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[str] = []

    async def until(self, predicate: Callable[[str], bool], what: str, timeout: float = RECV_TIMEOUT_S) -> str:
        for frame in self.frames:
            if predicate(frame):
                return frame
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no fragment with {what} within {timeout}s; got {self.frames[-5:]}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            assert isinstance(raw, str), "fragments are text frames"
            self.frames.append(raw)
            if predicate(raw):
                return raw

    async def settle(self) -> None:
        """Read whatever is still coming until the socket has been quiet for a moment."""
        with contextlib.suppress(TimeoutError):
            while True:
                frame = await asyncio.wait_for(self.ws.recv(), QUIET_S)
                assert isinstance(frame, str)
                self.frames.append(frame)

    def everything(self) -> str:
        return "\n".join(self.frames)


@contextlib.asynccontextmanager
async def open_ui(
    page: Browser, conversation_id: str | None = None, origin: str | None = "", query: str = ""
) -> AsyncIterator[UiSocket]:
    """The socket a desk page opens: session cookie, and the desk's own Origin unless told otherwise."""
    query = f"conversation={conversation_id}" if conversation_id else query
    url = f"{page.server.ws_url}/ws/ui" + (f"?{query}" if query else "")
    sent_origin = page.server.url if origin == "" else origin
    async with connect(
        url,
        additional_headers={"Cookie": page.cookie_header()},
        origin=None if sent_origin is None else Origin(sent_origin),
        open_timeout=RECV_TIMEOUT_S,
        close_timeout=5,
        proxy=None,
    ) as ws:
        socket = UiSocket(ws)
        # The desk page's snapshot holds the queue; a conversation page's, that conversation and no queue (a
        # conversation the agent may not see is refused, and the socket serves the desk page instead).
        timeline = f'id="timeline-{conversation_id}"'
        first = await socket.until(
            lambda f: timeline in f or 'id="queue"' in f or 'id="floor"' in f, "the first snapshot"
        )
        assert not (timeline in first and 'id="queue"' in first), "a conversation page has no queue to update"
        yield socket


def oob_queue_with(conversation_id: str) -> Callable[[str], bool]:
    def matches(frame: str) -> bool:
        return '<section id="queue" class="panel queue" hx-swap-oob="true">' in frame and (
            f'id="queue-item-{conversation_id}"' in frame
        )

    return matches


async def test_an_escalation_pushes_the_queue_with_the_new_item(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    integration = desk.integration()
    async with browser(desk.server, agent) as page, open_ui(page) as socket:
        async with desk.api(integration.token) as ai:
            handoff = await escalate(ai, context_bundle(customer=new_customer("Katherine Johnson")))
        frame = await socket.until(oob_queue_with(handoff["conversation_id"]), "the new queue item")
        assert "Katherine Johnson" in frame
        assert "low_confidence" in frame
        # Nobody's "my conversations" changed: the socket does not re-read it.
        assert 'id="my-conversations"' not in frame

        async with desk.api(agent.token) as staff:
            await claim(staff, handoff["conversation_id"])
        claimed = await socket.until(
            lambda f: f'id="mine-item-{handoff["conversation_id"]}"' in f,
            "the claim moving the item from the queue to my conversations",
        )
        queue = claimed[: claimed.index('id="my-conversations"')]
        assert f'id="queue-item-{handoff["conversation_id"]}"' not in queue
        assert f'id="mine-item-{handoff["conversation_id"]}"' in claimed


async def test_the_viewed_conversation_gets_its_messages_notes_and_status(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle())
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with (
        browser(desk.server, agent) as page,
        open_ui(page, conversation_id) as socket,
        desk.chat(handoff["customer_token"]) as customer,
    ):
        await socket.until(lambda f: f'id="timeline-{conversation_id}"' in f, "the timeline in the snapshot")
        assert (await page.htmx_post(f"{base}/claim")).status_code == 200
        await socket.until(
            lambda f: f'<section id="status-{conversation_id}"' in f and "Return to AI" in f, "the new status"
        )
        await customer.say("Any news? " + XSS_TEXT)
        appended = await socket.until(lambda f: "Any news?" in f, "the customer's message")
        assert f'<div id="timeline-items-{conversation_id}" hx-swap-oob="beforeend">' in appended
        assert str(escape("Any news? " + XSS_TEXT)) in appended
        assert "<img" not in appended

        assert (await page.htmx_post(f"{base}/note", {"text": "Looks like fraud"})).status_code == 200
        noted = await socket.until(lambda f: "Looks like fraud" in f, "the note")
        assert 'class="note"' in noted
        assert (await page.htmx_post(f"{base}/reply", {"text": "On it"})).status_code == 200
        await socket.until(lambda f: "On it" in f, "the agent's reply")
        await socket.settle()
        everything = socket.everything()
        for text in ("Any news?", "Looks like fraud", "On it"):
            assert everything.count(text) == 1, f"{text!r} pushed {everything.count(text)} times"


async def test_an_agent_gets_no_fragments_of_a_conversation_someone_else_holds(module_desk: Desk) -> None:
    desk = module_desk
    holder, other = desk.staff("agent", name="Holder Hannah"), desk.staff("agent")
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle())
        conversation_id = handoff["conversation_id"]
        async with (
            browser(desk.server, other) as other_page,
            open_ui(other_page, conversation_id) as watching,
            open_ui(other_page) as at_desk,
            desk.api(holder.token) as staff,
        ):
            await claim(staff, conversation_id)
            taken = await watching.until(
                lambda f: f'id="status-{conversation_id}"' in f and "Holder Hannah" in f, "who took it"
            )
            assert "You can no longer see this conversation." in taken
            async with desk.chat(handoff["customer_token"]) as customer:
                await customer.say("private question")
            await post_message(staff, conversation_id, "private answer")
            await post_message(staff, conversation_id, "private note", internal=True)

            # A later queue change reaches the desk page: everything before it has been dispatched to both sockets.
            sentinel = await escalate(ai, context_bundle())
            await at_desk.until(oob_queue_with(sentinel["conversation_id"]), "the sentinel in the queue")
            await watching.settle()
            async with open_ui(other_page, conversation_id) as late:
                await late.settle()
            for socket in (watching, at_desk, late):
                assert "private" not in socket.everything(), "another agent's conversation leaked"
            assert conversation_id not in late.everything()


async def test_the_handshake_needs_the_session_and_the_desks_origin(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page:
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{desk.server.port + 1}"):
            with pytest.raises(InvalidStatus) as refused:
                async with open_ui(page, origin=origin):
                    pass
            assert refused.value.response.status_code == 403, origin
        async with open_ui(page, origin=None) as socket:  # non-browser clients send no Origin
            assert socket.frames
    async with browser(desk.server) as anonymous:
        with pytest.raises(InvalidStatus) as refused:
            async with open_ui(anonymous):
                pass
        assert refused.value.response.status_code == 403
