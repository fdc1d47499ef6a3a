"""Claims under contention: many agents claim many conversations at once; each has exactly one winner."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import httpx

from tests._support import Desk, assignee_id, context_bundle, error_of, escalate, read

CLAIMANTS = 20
CONVERSATIONS = 10


async def test_claim_race_has_one_winner_per_conversation(desk: Desk) -> None:
    integration = desk.integration()
    agents = desk.staff_many(CLAIMANTS, capacity=CONVERSATIONS * 2)
    supervisor = desk.staff("supervisor")

    async with desk.api(integration.token) as ai:
        handoffs = await asyncio.gather(*(escalate(ai, context_bundle()) for _ in range(CONVERSATIONS)))
    conversation_ids = [h["conversation_id"] for h in handoffs]

    clients = {agent.id: desk.api(agent.token) for agent in agents}
    attempts = [(agent_id, cid) for agent_id in clients for cid in conversation_ids]
    random.shuffle(attempts)

    async def attempt(agent_id: str, conversation_id: str) -> tuple[str, str, httpx.Response]:
        response = await clients[agent_id].post(f"/api/v1/conversations/{conversation_id}/claim")
        return agent_id, conversation_id, response

    try:
        results = await asyncio.gather(*(attempt(a, c) for a, c in attempts))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))

    winners: dict[str, list[str]] = defaultdict(list)
    for agent_id, conversation_id, response in results:
        if response.status_code == 200:
            assert assignee_id(response.json()) == agent_id, response.text
            winners[conversation_id].append(agent_id)
        else:
            error_of(response, 409, "already_assigned")

    assert sorted(winners) == sorted(conversation_ids), f"conversations without a winner: {winners}"
    for conversation_id, won in winners.items():
        assert len(won) == 1, f"{conversation_id} claimed by {won}"

    async with desk.api(supervisor.token) as sup:
        for conversation_id in conversation_ids:
            conversation = await read(sup, conversation_id)
            assert conversation["status"] == "assigned"
            assert assignee_id(conversation) == winners[conversation_id][0]
