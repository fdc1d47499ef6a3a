"""KPIs over a window, and conversations abandoned while they waited in the queue."""

from __future__ import annotations

from tests._support import Desk, Feed, claim, context_bundle, create_conversation, error_of, escalate, ok, outcome


async def test_metrics_summary_counts_the_window_per_reason(desk: Desk) -> None:
    integration = desk.integration()
    agent, supervisor = desk.staff("agent"), desk.staff("supervisor")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff, desk.api(supervisor.token) as boss:
        returned = await escalate(ai, context_bundle())
        await claim(staff, returned["conversation_id"])
        ok(
            await staff.post(
                f"/api/v1/conversations/{returned['conversation_id']}/return",
                json=outcome(recommendation_feedback="used"),
            )
        )
        left = await escalate(ai, context_bundle(reason={"code": "user_request"}))
        ok(await ai.post(f"/api/v1/conversations/{left['conversation_id']}/abandon"))

        summary = ok(await boss.get("/api/v1/metrics/summary", params={"window": "1h"}))
        overall = summary["overall"]
        assert (overall["handoffs"], overall["returned_to_ai"], overall["abandoned"]) == (2, 1, 1)
        assert overall["abandonment_rate"] == 0.5
        assert overall["return_to_ai_rate"] == 1.0
        assert overall["recommended_action_acceptance"] == 1.0
        assert overall["queue_wait_s"]["p50"] is not None
        assert summary["by_reason"]["user_request"]["abandoned"] == 1
        assert summary["window"]["seconds"] == 3600

        for bad in ("forever", "0h", "-1h", "1000d"):
            response = await boss.get("/api/v1/metrics/summary", params={"window": bad})
            assert "window" in error_of(response, 422, "validation_error")["fields"]
        error_of(await ai.get("/api/v1/metrics/summary"), 403, "forbidden")
    async with desk.api() as anonymous:
        error_of(await anonymous.get("/api/v1/metrics/summary"), 401, "unauthorized")


async def test_abandon_takes_a_queued_conversation_out_and_tells_everyone(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration, stranger = desk.integration(), desk.integration()
    agent = desk.staff("agent")
    async with (
        desk.api(integration.token) as ai,
        desk.api(stranger.token) as other_ai,
        desk.api(agent.token) as staff,
        desk.staff_socket(agent.token) as agent_ws,
    ):
        feed = Feed(ai)
        await feed.poll()
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.status("queued")
            error_of(await other_ai.post(f"/api/v1/conversations/{cid}/abandon"), 404, "not_found")
            error_of(await staff.post(f"/api/v1/conversations/{cid}/abandon"), 403, "forbidden")
            answer = ok(await ai.post(f"/api/v1/conversations/{cid}/abandon"))
            assert answer["status"] == "abandoned"
            await customer.status("abandoned")
        await agent_ws.event("conversation.abandoned", cid)
        await feed.wait_for("conversation.abandoned", cid)
        queue = ok(await staff.get("/api/v1/queue"))["items"]
        assert cid not in [item["conversation_id"] for item in queue]
        error_of(await ai.post(f"/api/v1/conversations/{cid}/abandon"), 409, "not_queued")

        in_bot = await create_conversation(ai)
        error_of(await ai.post(f"/api/v1/conversations/{in_bot['id']}/abandon"), 409, "not_queued")
