"""The whole handoff loop through the public interface, on both databases and both buses.

An integration opens a conversation, the customer chats, the AI escalates with a context bundle, the queue and
the staff sockets show it, an agent claims, both sides chat live, the agent writes a note that only staff see,
hands control back with an outcome, the AI carries on, and the learning log records the handoff.
"""

from __future__ import annotations

import uuid

import pytest

from tests._support import (
    HEX_ID,
    Desk,
    Feed,
    ServerPool,
    assert_gapless,
    assert_timestamp,
    assignee_id,
    claim,
    context_bundle,
    create_conversation,
    dump,
    error_of,
    escalate,
    leaves,
    ok,
    outcome,
    post_message,
    read,
)

NOTE = "Internal: customer is on the legacy plan, refund needs a manager OK."
NOTE_FOR_AI = "Refund issued; tell the customer it takes 5 business days."
RESOLUTION = "Refunded the duplicate November charge"


@pytest.mark.parametrize("bus", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_handoff_loop(database_url: str, server: ServerPool, bus: str) -> None:
    desk = Desk(server(database_url, redis=bus == "redis"))
    integration = desk.integration()
    agent = desk.staff("agent", name="Grace Agent")
    bystander = desk.staff("agent")
    supervisor = desk.staff("supervisor")

    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff, desk.api(supervisor.token) as sup:
        feed = Feed(ai)
        created = await create_conversation(ai)
        conversation_id = created["id"]
        assert HEX_ID.match(conversation_id), created
        assert created["status"] == "bot"
        assert created["customer_token"].startswith("dskc_")
        assert created["chat_url"].endswith(f"/chat/{created['customer_token']}")

        async with (
            desk.chat(created["customer_token"]) as customer,
            desk.staff_socket(agent.token) as agent_ws,
            desk.staff_socket(bystander.token) as bystander_ws,
            desk.staff_socket(supervisor.token) as supervisor_ws,
        ):
            await customer.status("bot")

            # The customer writes while the AI is in control: acked with a seq, and on the integration's feed.
            ack = await customer.say("Hi, I was charged twice.")
            assert ack["seq"] == 1
            event = await feed.wait_for("message.created", conversation_id)
            assert "Hi, I was charged twice." in dump(event["data"])
            assert_timestamp(event["at"])

            reply = await post_message(ai, conversation_id, "Sorry about that, let me look.")
            assert reply["seq"] == 2
            frame = await customer.message("Sorry about that, let me look.")
            assert frame["author"]["kind"] == "ai"
            assert frame["seq"] == 2
            assert_timestamp(frame["at"])

            # Escalation with the whole context bundle.
            key = uuid.uuid4().hex
            handoff = await escalate(ai, context_bundle(conversation_id=conversation_id), key)
            assert handoff["conversation_id"] == conversation_id
            assert handoff["status"] == "queued"
            assert HEX_ID.match(handoff["handoff_id"]), handoff
            assert isinstance(handoff["position"], int)
            assert handoff["position"] >= 1
            assert handoff["customer_token"].startswith("dskc_")
            assert handoff["chat_url"].endswith(f"/chat/{handoff['customer_token']}")
            for socket in (agent_ws, bystander_ws, supervisor_ws):
                await socket.event("handoff.created", conversation_id)
            await customer.status("queued")
            await feed.wait_for("handoff.created", conversation_id)

            queue = ok(await staff.get("/api/v1/queue"))["items"]
            [item] = [i for i in queue if i["conversation_id"] == conversation_id]
            assert item["position"] == 1
            assert item["priority"] == "high"
            assert item["skills"] == ["billing"]
            assert "low_confidence" in dump(item["reason"])
            assert item["summary"].startswith("Customer was charged twice")
            assert_timestamp(item["waiting_since"])
            assert_timestamp(item["sla_due_at"])

            # The agent claims; a second claimant loses.
            claimed = await claim(staff, conversation_id)
            assert claimed["status"] == "assigned"
            assert assignee_id(claimed) == agent.id
            async with desk.api(bystander.token) as other:
                error_of(await other.post(f"/api/v1/conversations/{conversation_id}/claim"), 409, "already_assigned")
            joined = await customer.status("assigned")
            assert joined["agent"]["name"] == "Grace Agent"
            await feed.wait_for("handoff.claimed", conversation_id)
            claimed_event = await agent_ws.event("handoff.claimed", conversation_id)

            # Live chat both ways.
            await post_message(staff, conversation_id, "Hello, I'm Grace. I'll sort this out.")
            frame = await customer.message("Hello, I'm Grace. I'll sort this out.")
            assert frame["author"]["kind"] == "agent"
            assert frame["author"]["name"] == "Grace Agent"
            await customer.say("Thank you, Grace!")
            event = await agent_ws.event("message.created", conversation_id, lambda e: "Thank you, Grace!" in dump(e))
            assert event["data"]
            await supervisor_ws.event("message.created", conversation_id, lambda e: "Thank you, Grace!" in dump(e))

            # An internal note reaches staff who may see the conversation and nobody else.
            await post_message(staff, conversation_id, NOTE, internal=True)
            await supervisor_ws.event("note.created", conversation_id, lambda e: NOTE in dump(e))
            await agent_ws.event("note.created", conversation_id, lambda e: NOTE in dump(e))
            await post_message(staff, conversation_id, "Refund is on its way.")
            await customer.message("Refund is on its way.")
            assert NOTE not in dump(customer.frames)

            # Control goes back to the AI with an outcome.
            returned = ok(
                await staff.post(
                    f"/api/v1/conversations/{conversation_id}/return",
                    json=outcome(resolution=RESOLUTION, note_for_ai=NOTE_FOR_AI),
                )
            )
            assert returned["status"] == "bot"
            event = await feed.wait_for("control.returned", conversation_id)
            data = dump(event["data"])
            assert RESOLUTION in data
            assert NOTE_FOR_AI in data
            for text in ("Hello, I'm Grace. I'll sort this out.", "Thank you, Grace!", "Refund is on its way."):
                assert text in data, f"control.returned lacks the exchanged message {text!r}: {data}"
            assert "edited" in data
            await customer.status("bot")

            # The AI carries on, and the customer sees it.
            await post_message(ai, conversation_id, "Anything else I can help with?")
            frame = await customer.message("Anything else I can help with?")
            assert frame["author"]["kind"] == "ai"

            # Sentinel for the bystander: a new conversation in the queue, after everything above.
            other_handoff = await escalate(ai, context_bundle())
            await bystander_ws.event("handoff.created", other_handoff["conversation_id"])
            leaked = [
                e
                for e in bystander_ws.events()
                if e["conversation_id"] == conversation_id and int(e["id"]) > int(claimed_event["id"])
            ]
            assert not leaked, f"an agent who does not hold the conversation received its events: {leaked}"
            assert NOTE not in dump(bystander_ws.frames)
            assert "Thank you, Grace!" not in dump(bystander_ws.frames)

            assert NOTE not in dump(customer.frames)

        # What the integration reads: the whole conversation, gap-free, no note.
        conversation = await read(ai, conversation_id)
        assert conversation["status"] == "bot"
        assert_gapless(conversation)
        texts = [m["text"] for m in conversation["messages"]]

        # The customer's live view equals a fresh read: every message once, in order (its own may be only acked).
        live = [(f["seq"], f["author"]["kind"], f["text"]) for f in customer.messages()]
        assert [seq for seq, _, _ in live] == sorted({seq for seq, _, _ in live}), f"duplicates or disorder: {live}"
        stored = [(m["seq"], m["author"]["kind"], m["text"]) for m in conversation["messages"]]
        assert [m for m in stored if m[1] != "customer"] == [m for m in live if m[1] != "customer"]
        assert set(live) <= set(stored)
        for text in (
            "Hi, I was charged twice.",
            "Sorry about that, let me look.",
            "Hello, I'm Grace. I'll sort this out.",
            "Thank you, Grace!",
            "Refund is on its way.",
            "Anything else I can help with?",
        ):
            assert texts.count(text) == 1, texts
        kinds = {m["text"]: m["author"]["kind"] for m in conversation["messages"]}
        assert kinds["Thank you, Grace!"] == "customer"
        assert kinds["Refund is on its way."] == "agent"
        assert "system" in kinds.values(), "no system message for the join or the hand-back"
        assert NOTE not in dump(conversation)
        await feed.poll()
        assert NOTE not in dump(feed.events)
        assert all(e["type"] != "note.created" for e in feed.events)

        # Staff read includes the note.
        staff_view = await read(sup, conversation_id)
        assert NOTE in dump(staff_view.get("notes"))
        assert NOTE in dump(await read(staff, conversation_id))

        # One learning entry with everything about the handoff.
        entries = ok(await sup.get("/api/v1/learning-log"))["items"]
        assert len(entries) == 1, entries
        entry = entries[0]
        values = [value for _, value in leaves(entry)]
        assert conversation_id in values
        assert "low_confidence" in values
        assert 0.31 in values
        assert "edited" in values
        assert RESOLUTION in values
        assert NOTE_FOR_AI in values
        assert agent.id in values
        for what in ("wait", "handle"):
            timings = [v for path, v in leaves(entry) if what in path.lower() and isinstance(v, int | float)]
            assert timings, f"no numeric {what} time in the learning entry: {entry}"
            assert all(v >= 0 for v in timings), entry
