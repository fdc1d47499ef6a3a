"""Two `desk serve` processes on one PostgreSQL database and one Redis behave as one desk."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests._support import (
    Desk,
    ServerPool,
    assert_gapless,
    assignee_id,
    claim,
    context_bundle,
    create_conversation,
    dump,
    error_of,
    escalate,
    mentions,
    ok,
    post_message,
    read,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_customer_on_one_process_and_agent_on_the_other(postgres_url: str, server: ServerPool) -> None:
    a = Desk(server(postgres_url, redis=True))
    b = Desk(server(postgres_url, redis=True))
    integration = a.integration()
    agent = b.staff("agent", name="Barbara Agent")
    supervisor = a.staff("supervisor")

    async with (
        a.api(integration.token) as ai,
        b.api(agent.token) as staff,
        b.staff_socket(agent.token) as agent_ws,
        a.staff_socket(supervisor.token) as supervisor_ws,
    ):
        created = await create_conversation(ai)
        cid = created["id"]
        async with a.chat(created["customer_token"]) as customer:
            await customer.status("bot")
            await customer.say("Hello from process A")
            await post_message(ai, cid, "The AI answers on A")
            await customer.message("The AI answers on A")

            await escalate(ai, context_bundle(conversation_id=cid))
            await agent_ws.event("handoff.created", cid)
            await supervisor_ws.event("handoff.created", cid)
            await customer.status("queued")

            await claim(staff, cid)
            joined = await customer.status("assigned")
            assert joined["agent"]["name"] == "Barbara Agent"

            for index in range(3):
                await post_message(staff, cid, f"agent on B says {index}")
                frame = await customer.message(f"agent on B says {index}")
                assert frame["author"]["kind"] == "agent"
                text = f"customer on A says {index}"
                await customer.say(text)
                await agent_ws.event("message.created", cid, mentions(text))
            await supervisor_ws.event("message.created", cid, lambda e: "customer on A says 2" in dump(e))

            last_seen = max(f["seq"] for f in customer.frames if f.get("type") in ("message", "ack"))

        # The customer comes back through the other process and resumes where it left off.
        await post_message(staff, cid, "written while the customer was away")
        async with b.chat(created["customer_token"]) as customer:
            mark = customer.mark()
            await customer.send({"type": "resume", "after_seq": last_seen})
            await post_message(staff, cid, "welcome back")
            await customer.message("welcome back")
            replayed = [(f["seq"], f["text"]) for f in customer.messages(customer.since(mark))]
        assert replayed == [(last_seen + 1, "written while the customer was away"), (last_seen + 2, "welcome back")]

        # The agent's socket moves to process A and resumes from the last event it saw on B.
        last_event = max(int(e["id"]) for e in agent_ws.events())
        async with b.chat(created["customer_token"]) as customer:
            await customer.say("missed by the agent")
        async with a.staff_socket(agent.token) as moved:
            mark = moved.mark()
            await moved.send({"type": "resume", "after": last_event})
            await moved.event("message.created", cid, mentions("missed by the agent"))
            ids = [int(e["id"]) for e in moved.events(moved.since(mark))]
        assert ids == sorted(set(ids)), ids
        assert all(i > last_event for i in ids), ids

        # Both processes read the same conversation.
        async with b.api(integration.token) as ai_on_b:
            on_a, on_b = await read(ai, cid), await read(ai_on_b, cid)
        assert on_a["messages"] == on_b["messages"]
        assert_gapless(on_a)


async def test_claim_race_across_processes(postgres_url: str, server: ServerPool) -> None:
    a = Desk(server(postgres_url, redis=True))
    b = Desk(server(postgres_url, redis=True))
    integration = a.integration()
    agents = a.staff_many(10, capacity=20)
    async with a.api(integration.token) as ai:
        handoffs = await asyncio.gather(*(escalate(ai, context_bundle()) for _ in range(5)))
    cids = [h["conversation_id"] for h in handoffs]
    clients = [(a if i % 2 else b).api(agent.token) for i, agent in enumerate(agents)]
    attempts = [(i, cid) for i in range(len(agents)) for cid in cids]
    random.shuffle(attempts)
    try:
        responses = await asyncio.gather(
            *(clients[i].post(f"/api/v1/conversations/{cid}/claim") for i, cid in attempts)
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    winners: dict[str, list[str]] = {cid: [] for cid in cids}
    for (i, cid), response in zip(attempts, responses, strict=True):
        if response.status_code == 200:
            winners[cid].append(agents[i].id)
        else:
            error_of(response, 409, "already_assigned")
    assert all(len(w) == 1 for w in winners.values()), winners
    async with b.api(integration.token) as ai_on_b:
        for cid in cids:
            conversation = ok(await ai_on_b.get(f"/api/v1/conversations/{cid}"))
            assert assignee_id(conversation) == winners[cid][0]
