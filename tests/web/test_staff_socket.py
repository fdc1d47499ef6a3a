"""The staff socket `/ws/staff`: live events, resume from an event id, and who receives what."""

from __future__ import annotations

from tests._support import (
    Desk,
    assert_socket_refused,
    claim,
    context_bundle,
    dump,
    escalate,
    post_message,
)


async def test_resume_replays_missed_events_once_in_order(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        first = await escalate(ai, context_bundle())
        conversation_id = first["conversation_id"]
        async with desk.staff_socket(agent.token) as socket:
            await claim(staff, conversation_id)
            seen = await socket.event("handoff.claimed", conversation_id)
            last_id = int(seen["id"])

        async with desk.chat(first["customer_token"]) as customer:
            await customer.say("missed one")
            await customer.say("missed two")
            second = await escalate(ai, context_bundle())

            async with desk.staff_socket(agent.token) as socket:
                mark = socket.mark()
                await socket.send({"type": "resume", "after": last_id})
                await customer.say("live three")
                await socket.event("message.created", conversation_id, lambda e: "live three" in dump(e))
                events = socket.events(socket.since(mark))

    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids)), f"events repeated or out of order: {ids}"
    assert all(i > last_id for i in ids), f"events at or before {last_id} replayed: {ids}"
    for text in ("missed one", "missed two", "live three"):
        matching = [e for e in events if e["type"] == "message.created" and text in dump(e["data"])]
        assert len(matching) == 1, f"{text!r} arrived {len(matching)} times: {events}"
    created = [e for e in events if e["type"] == "handoff.created"]
    assert [e["conversation_id"] for e in created] == [second["conversation_id"]]


async def test_agents_receive_only_what_they_may_see_and_supervisors_everything(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    holder, other = desk.staff("agent"), desk.staff("agent")
    supervisor = desk.staff("supervisor")
    async with (
        desk.api(integration.token) as ai,
        desk.api(holder.token) as staff,
        desk.staff_socket(holder.token) as holder_ws,
        desk.staff_socket(other.token) as other_ws,
        desk.staff_socket(supervisor.token) as supervisor_ws,
    ):
        handoff = await escalate(ai, context_bundle())
        conversation_id = handoff["conversation_id"]
        for socket in (holder_ws, other_ws, supervisor_ws):
            await socket.event("handoff.created", conversation_id)
        await claim(staff, conversation_id)
        claimed = await holder_ws.event("handoff.claimed", conversation_id)

        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.say("private question")
        await post_message(staff, conversation_id, "private answer")
        await post_message(staff, conversation_id, "private note", internal=True)
        for socket in (holder_ws, supervisor_ws):
            await socket.event("message.created", conversation_id, lambda e: "private question" in dump(e))
            await socket.event("message.created", conversation_id, lambda e: "private answer" in dump(e))
            await socket.event("note.created", conversation_id, lambda e: "private note" in dump(e))

        sentinel = await escalate(ai, context_bundle())
        await other_ws.event("handoff.created", sentinel["conversation_id"])
        leaked = [
            e
            for e in other_ws.events()
            if e["conversation_id"] == conversation_id and int(e["id"]) > int(claimed["id"])
        ]
        assert not leaked, f"an agent received events of a conversation someone else holds: {leaked}"
        assert "private" not in dump(other_ws.frames)


async def test_staff_socket_refuses_bad_credentials(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle())
    ws = desk.server.ws_url
    await assert_socket_refused(f"{ws}/ws/staff")
    await assert_socket_refused(f"{ws}/ws/staff?token=dsks_not-a-token")
    await assert_socket_refused(f"{ws}/ws/staff?token={integration.token}")
    await assert_socket_refused(f"{ws}/ws/staff?token={handoff['customer_token']}")
    await assert_socket_refused(f"{ws}/ws/chat")
    await assert_socket_refused(f"{ws}/ws/chat?token=dskc_not-a-token")
    await assert_socket_refused(f"{ws}/ws/chat?token={handoff['customer_token']}x")
    await assert_socket_refused(f"{ws}/ws/chat?token={integration.token}")
