"""The staff API: token login, the queue, claim, transfer, assign, resolve, and the learning log."""

from __future__ import annotations

from tests._support import (
    PASSWORD,
    Desk,
    Feed,
    assert_timestamp,
    assignee_id,
    claim,
    context_bundle,
    dump,
    error_of,
    escalate,
    ok,
    outcome,
    post_message,
    read,
)


async def test_token_login(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent", name="Linus Agent")
    async with desk.api() as anonymous:
        session = ok(await anonymous.post("/api/v1/auth/token", json={"email": agent.email, "password": PASSWORD}))
        assert session["token"].startswith("dsks_")
        assert_timestamp(session["expires_at"])
        user = session["user"]
        assert (user["id"], user["name"], user["role"]) == (agent.id, "Linus Agent", "agent")
    async with desk.api(session["token"]) as staff:
        ok(await staff.get("/api/v1/queue"))


async def test_queue_is_ordered_most_urgent_first(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        low = await escalate(ai, context_bundle(priority="low"))
        normal = await escalate(ai, context_bundle(priority="normal"))
        urgent = await escalate(ai, context_bundle(priority="urgent"))
        high = await escalate(ai, context_bundle(priority="high"))
        items = ok(await staff.get("/api/v1/queue"))["items"]
        positions = [i["position"] for i in items]
        assert positions == list(range(1, len(items) + 1)), positions
        ours = [
            i["conversation_id"]
            for i in items
            if i["conversation_id"] in {h["conversation_id"] for h in (low, normal, urgent, high)}
        ]
        assert ours == [h["conversation_id"] for h in (urgent, high, normal, low)]
        for item in items:
            assert set(item) >= {
                "conversation_id",
                "position",
                "reason",
                "priority",
                "skills",
                "waiting_since",
                "sla_due_at",
                "summary",
            }, item


async def test_claim_rules(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    first, second = desk.staff("agent"), desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(first.token) as one, desk.api(second.token) as two:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        feed = Feed(ai)
        claimed = await claim(one, cid)
        assert claimed["status"] == "assigned"
        assert assignee_id(claimed) == first.id
        assert assignee_id(await claim(one, cid)) == first.id  # claiming what you hold
        error_of(await two.post(f"/api/v1/conversations/{cid}/claim"), 409, "already_assigned")
        event = await feed.wait_for("handoff.claimed", cid)
        assert event["data"]
        queue = ok(await two.get("/api/v1/queue"))["items"]
        assert cid not in [i["conversation_id"] for i in queue]
        # The holder and supervisors read it; another agent does not know it exists.
        assert (await read(one, cid))["status"] == "assigned"
        error_of(await two.get(f"/api/v1/conversations/{cid}"), 404, "not_found")


async def test_transfer_and_assign(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    first, second, third = desk.staff("agent"), desk.staff("agent"), desk.staff("agent")
    supervisor = desk.staff("supervisor")
    async with (
        desk.api(integration.token) as ai,
        desk.api(first.token) as one,
        desk.api(second.token) as two,
        desk.api(supervisor.token) as sup,
    ):
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        error_of(await one.post(f"/api/v1/conversations/{cid}/assign", json={"agent_id": first.id}), 403, "forbidden")
        assigned = ok(await sup.post(f"/api/v1/conversations/{cid}/assign", json={"agent_id": first.id}))
        assert assigned["status"] == "assigned"
        assert assignee_id(assigned) == first.id

        response = await two.post(f"/api/v1/conversations/{cid}/transfer", json={"to_agent_id": second.id})
        assert response.status_code in (403, 404), response.text
        moved = ok(await one.post(f"/api/v1/conversations/{cid}/transfer", json={"to_agent_id": second.id}))
        assert assignee_id(moved) == second.id or moved["status"] == "queued", moved
        await Feed(ai).wait_for("handoff.transferred", cid)

        reassigned = ok(await sup.post(f"/api/v1/conversations/{cid}/assign", json={"agent_id": third.id}))
        assert assignee_id(reassigned) == third.id
        conversation = await read(sup, cid)
        assert assignee_id(conversation) == third.id
        error_of(await one.post(f"/api/v1/conversations/{cid}/messages", json={"text": "old holder"}), 403, "forbidden")


async def test_resolve_records_outcome_and_learning_entry(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent, other = desk.staff("agent"), desk.staff("agent")
    supervisor = desk.staff("supervisor")
    async with (
        desk.api(integration.token) as ai,
        desk.api(agent.token) as staff,
        desk.api(other.token) as other_api,
        desk.api(supervisor.token) as sup,
    ):
        handoff = await escalate(ai, context_bundle(reason={"code": "user_request", "confidence": 0.9}))
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        async with desk.chat(handoff["customer_token"]) as customer:
            await post_message(staff, cid, "All sorted.")
            await customer.message("All sorted.")
            resolved = ok(
                await staff.post(f"/api/v1/conversations/{cid}/resolve", json=outcome(resolution="Closed by agent"))
            )
            assert resolved["status"] == "resolved"
            await customer.status("resolved")
        feed = Feed(ai)
        await feed.wait_for("conversation.resolved", cid)
        error_of(await ai.post(f"/api/v1/conversations/{cid}/messages", json={"text": "hello?"}), 409, "not_in_control")
        error_of(await staff.post(f"/api/v1/conversations/{cid}/claim"), 409, "not_queued")

        # The agent who handled it keeps reading it and sees their learning entry; another agent sees neither.
        assert (await read(staff, cid))["status"] == "resolved"
        error_of(await other_api.get(f"/api/v1/conversations/{cid}"), 404, "not_found")
        mine = ok(await staff.get("/api/v1/learning-log"))["items"]
        assert [e for e in mine if cid in dump(e)], mine
        assert all(agent.id in dump(e) for e in mine)
        theirs = ok(await other_api.get("/api/v1/learning-log"))["items"]
        assert not [e for e in theirs if cid in dump(e)]
        everything = ok(await sup.get("/api/v1/learning-log"))["items"]
        [entry] = [e for e in everything if cid in dump(e)]
        assert "Closed by agent" in dump(entry)
        assert "user_request" in dump(entry)

        future = ok(await sup.get("/api/v1/learning-log", params={"since": "2999-01-01T00:00:00Z"}))["items"]
        assert future == []


async def test_supervisors_and_admins_may_act_on_any_conversation(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent, other = desk.staff("agent"), desk.staff("agent")
    supervisor, admin = desk.staff("supervisor"), desk.staff("admin")
    async with (
        desk.api(integration.token) as ai,
        desk.api(agent.token) as staff,
        desk.api(supervisor.token) as sup,
        desk.api(admin.token) as adm,
    ):
        first = await escalate(ai, context_bundle())
        await claim(staff, first["conversation_id"])
        returned = ok(await sup.post(f"/api/v1/conversations/{first['conversation_id']}/return", json=outcome()))
        assert returned["status"] == "bot"
        await Feed(ai).wait_for("control.returned", first["conversation_id"])

        second = await escalate(ai, context_bundle())
        cid = second["conversation_id"]
        assigned = ok(await adm.post(f"/api/v1/conversations/{cid}/assign", json={"agent_id": other.id}))
        assert assignee_id(assigned) == other.id
        assert NOTE_BY_ADMIN not in dump(assigned)
        await post_message(adm, cid, NOTE_BY_ADMIN, internal=True)
        assert NOTE_BY_ADMIN in dump(await read(sup, cid))
        assert NOTE_BY_ADMIN not in dump(await read(ai, cid))
        resolved = ok(await adm.post(f"/api/v1/conversations/{cid}/resolve", json=outcome()))
        assert resolved["status"] == "resolved"


NOTE_BY_ADMIN = "admin note: watch this account"


async def test_every_position_agrees_with_the_queue(desk: Desk) -> None:
    """The escalation's answer, the customer's status frame and the queue listing count places the same way."""
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        answers = [await escalate(ai, context_bundle(priority=p)) for p in ("low", "high", "normal", "high")]
        items = ok(await staff.get("/api/v1/queue"))["items"]
        listed = {i["conversation_id"]: i["position"] for i in items}
        assert sorted(listed.values()) == [1, 2, 3, 4]
        assert answers[-1]["position"] == listed[answers[-1]["conversation_id"]] == 2
        for answer in answers:
            async with desk.chat(answer["customer_token"]) as customer:
                status = await customer.status("queued")
                assert status["position"] == listed[answer["conversation_id"]], (status, listed)
        skilled = ok(await staff.get("/api/v1/queue", params={"skill": "billing"}))["items"]
        assert [i["position"] for i in skilled] == [i["position"] for i in items if "billing" in i["skills"]]
