"""Presence over `/ws/ui`: "also viewing" avatars on a conversation, typing both ways between the agent's page and
the customer's chat, and the floor told when who is online changes — across two processes on PostgreSQL+Redis."""

from __future__ import annotations

import json

from tests._support import Desk, claim, context_bundle, escalate, new_customer
from tests.web.test_pages import browser
from tests.web.test_ui_socket import open_ui


def _viewers(frame: str) -> str:
    """The "also viewing" element of a frame ("" if none)."""
    start = frame.find('<div id="viewers-')
    return "" if start < 0 else frame[start : frame.index("</div>", start)]


async def test_colleagues_on_the_same_conversation_see_each_other(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent", name="Ada Agent")
    supervisor = desk.staff("supervisor", name="Sam Supervisor")
    async with desk.api(desk.integration().token) as ai:
        conversation_id = (await escalate(ai, context_bundle()))["conversation_id"]
    async with (
        browser(desk.server, agent) as agent_page,
        browser(desk.server, supervisor) as boss_page,
        open_ui(agent_page, conversation_id) as agent_socket,
    ):
        async with open_ui(boss_page, conversation_id) as boss_socket:
            await agent_socket.until(lambda f: "Sam Supervisor" in _viewers(f), "the supervisor joining")
            await boss_socket.until(lambda f: "Ada Agent" in _viewers(f), "the agent already there")
            assert all("Sam Supervisor" not in _viewers(f) for f in boss_socket.frames), "not oneself"
        left = await agent_socket.until(
            lambda f: f'id="viewers-{conversation_id}"' in f and "Sam Supervisor" not in _viewers(f),
            "the supervisor leaving",
        )
        assert "Also viewing" not in left


async def test_typing_goes_both_ways(module_desk: Desk) -> None:
    desk = module_desk
    agent, bystander = desk.staff("agent", name="Ada Agent"), desk.staff("agent", name="Bo Bystander")
    async with desk.api(desk.integration().token) as ai:
        handoff = await escalate(ai, context_bundle(customer=new_customer("Carla Customer")))
    conversation_id = handoff["conversation_id"]
    async with desk.api(agent.token) as staff:
        await claim(staff, conversation_id)
    async with (
        browser(desk.server, agent) as page,
        browser(desk.server, bystander) as other_page,
        open_ui(page, conversation_id) as socket,
        desk.chat(handoff["customer_token"]) as customer,
    ):
        await customer.send({"type": "resume", "after_seq": 0})
        await customer.send({"type": "typing"})
        shown = await socket.until(lambda f: f'id="typing-{conversation_id}"' in f and "is typing" in f, "typing")
        assert "Carla Customer" in shown
        assert "data-expires-ms" in shown

        await socket.ws.send(json.dumps({"type": "typing", "conversation_id": conversation_id}))
        frame = await customer.until(lambda f: f.get("type") == "typing", "the agent typing")
        assert frame["author"] == {"kind": "agent", "name": "Ada Agent"}

        # Someone who does not hold the conversation cannot make the customer see them typing.
        async with open_ui(other_page) as other_socket:
            await other_socket.ws.send(json.dumps({"type": "typing", "conversation_id": conversation_id}))
            await other_socket.ws.send("not json")
            await other_socket.ws.send('{"type": "typing"}')
        mark = customer.mark()
        await customer.say("hello")
        assert all(f.get("type") != "typing" for f in customer.since(mark))


async def test_the_floor_hears_who_comes_online(module_desk: Desk) -> None:
    desk = module_desk
    supervisor, agent = desk.staff("supervisor"), desk.staff("agent")
    async with browser(desk.server, supervisor) as boss_page, browser(desk.server, agent) as agent_page:
        async with open_ui(boss_page, query="page=floor") as floor:
            first = len(floor.frames)
            async with open_ui(agent_page):
                await floor.until(lambda f: 'id="floor"' in f and floor.frames.index(f) >= first, "a new floor")
        # An agent asking for the floor gets the desk page's socket instead.
        async with open_ui(agent_page, query="page=floor") as not_floor:
            assert 'id="queue"' in not_floor.frames[0]
            assert all('id="floor"' not in f for f in not_floor.frames)
