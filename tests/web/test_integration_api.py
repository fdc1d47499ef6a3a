"""The integration API: conversations, AI messages, escalations with idempotency, the long-polled feed."""

from __future__ import annotations

import asyncio
import time
import uuid

from tests._support import (
    HEX_ID,
    Desk,
    Feed,
    assert_gapless,
    assert_timestamp,
    claim,
    context_bundle,
    create_conversation,
    error_of,
    escalate,
    new_customer,
    ok,
    post_message,
    read,
)


async def test_create_and_read_conversation(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        customer = new_customer("Ada")
        created = await create_conversation(ai, customer)
        assert set(created) >= {"id", "status", "customer_token", "chat_url"}
        assert HEX_ID.match(created["id"])
        assert created["status"] == "bot"
        conversation = await read(ai, created["id"])
        assert conversation["status"] == "bot"
        assert conversation["assignee"] is None
        assert conversation["customer"]["name"] == "Ada"
        assert conversation["customer"]["email"] == customer["email"]
        assert conversation["messages"] == []

        message = await post_message(ai, created["id"], "Hello, how can I help?")
        assert message["seq"] == 1
        conversation = await read(ai, created["id"])
        [stored] = conversation["messages"]
        assert stored["seq"] == 1
        assert stored["text"] == "Hello, how can I help?"
        assert stored["author"]["kind"] == "ai"
        assert_timestamp(stored["at"])


async def test_escalation_without_conversation_creates_it_from_the_transcript(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    bundle = context_bundle()
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, bundle)
        assert handoff["status"] == "queued"
        assert HEX_ID.match(handoff["conversation_id"])
        assert HEX_ID.match(handoff["handoff_id"])
        assert handoff["customer_token"].startswith("dskc_")
        assert handoff["chat_url"].endswith(f"/chat/{handoff['customer_token']}")

        for reader in (ai, staff):
            conversation = await read(reader, handoff["conversation_id"])
            assert conversation["status"] == "queued"
            assert conversation["customer"]["name"] == bundle["customer"]["name"]
            assert_gapless(conversation)
            texts = [m["text"] for m in conversation["messages"]]
            transcript = [t["text"] for t in bundle["transcript"]]
            assert [t for t in texts if t in transcript] == transcript
            kinds = {m["text"]: m["author"]["kind"] for m in conversation["messages"]}
            assert [kinds[t["text"]] for t in bundle["transcript"]] == [t["role"] for t in bundle["transcript"]]
            handoff_view = str(conversation)
            assert bundle["summary"] in handoff_view
            assert "refund_request" in handoff_view
            assert "Refund duplicate charge" in handoff_view

        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.status("queued")


async def test_escalation_idempotency_key(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        bundle = context_bundle()
        key = uuid.uuid4().hex
        first = await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": key})
        again = await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        assert again.status_code in (200, 201), again.text
        assert again.json() == first.json()

        changed = dict(bundle, summary="a different summary")
        error_of(
            await ai.post("/api/v1/escalations", json=changed, headers={"Idempotency-Key": key}),
            422,
            "idempotency_key_reused",
        )

        queue = ok(await staff.get("/api/v1/queue"))["items"]
        conversation_id = first.json()["conversation_id"]
        assert [i["conversation_id"] for i in queue].count(conversation_id) == 1
        customer_name = bundle["customer"]["name"]
        conversation = await read(ai, conversation_id)
        assert conversation["customer"]["name"] == customer_name

        # The same body under a new key is a new escalation (here: a new conversation).
        other = await escalate(ai, bundle)
        assert other["conversation_id"] != conversation_id

        # Same key, existing conversation: still one handoff.
        created = await create_conversation(ai)
        bundle = context_bundle(conversation_id=created["id"])
        key = uuid.uuid4().hex
        first_answer = await escalate(ai, bundle, key)
        assert ok(await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": key}), 200, 201) == (
            first_answer
        )
        queue = ok(await staff.get("/api/v1/queue"))["items"]
        assert [i["conversation_id"] for i in queue].count(created["id"]) == 1


async def test_concurrent_repeats_of_an_escalation_get_the_first_answer(module_desk: Desk) -> None:
    """A client that retries on a timeout may send the same escalation while the first is still in flight."""
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        for bundle in (context_bundle(), context_bundle(conversation_id=(await create_conversation(ai))["id"])):
            key = uuid.uuid4().hex
            responses = await asyncio.gather(
                *(ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": key}) for _ in range(4))
            )
            answers = [ok(response, 200, 201) for response in responses]
            assert all(answer == answers[0] for answer in answers), answers
            queue = ok(await staff.get("/api/v1/queue"))["items"]
            assert [i["conversation_id"] for i in queue].count(answers[0]["conversation_id"]) == 1


async def test_escalating_a_queued_or_assigned_conversation_is_a_conflict(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        bundle = context_bundle(conversation_id=handoff["conversation_id"])
        error_of(
            await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": uuid.uuid4().hex}),
            409,
            "already_escalated",
        )
        await claim(staff, handoff["conversation_id"])
        error_of(
            await ai.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": uuid.uuid4().hex}),
            409,
            "already_escalated",
        )


async def test_ai_messages_only_while_in_control(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        url = f"/api/v1/conversations/{handoff['conversation_id']}/messages"
        error_of(await ai.post(url, json={"text": "while queued"}), 409, "not_in_control")
        await claim(staff, handoff["conversation_id"])
        error_of(await ai.post(url, json={"text": "while a human holds it"}), 409, "not_in_control")
        conversation = await read(ai, handoff["conversation_id"])
        assert "while a human holds it" not in str(conversation["messages"])
        assert "while queued" not in str(conversation["messages"])


async def test_integration_sees_only_its_own_conversations(module_desk: Desk) -> None:
    desk = module_desk
    mine, theirs = desk.integration(), desk.integration()
    async with desk.api(mine.token) as ai, desk.api(theirs.token) as other:
        created = await create_conversation(ai)
        conversation_id = created["id"]
        error_of(await other.get(f"/api/v1/conversations/{conversation_id}"), 404, "not_found")
        error_of(
            await other.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "hi"}), 404, "not_found"
        )
        bundle = context_bundle(conversation_id=conversation_id)
        error_of(
            await other.post("/api/v1/escalations", json=bundle, headers={"Idempotency-Key": uuid.uuid4().hex}),
            404,
            "not_found",
        )

        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("for my AI only")
        feed = Feed(ai)
        await feed.wait_for("message.created", conversation_id)
        foreign = Feed(other)
        await foreign.poll()
        assert all(e["conversation_id"] != conversation_id for e in foreign.events)
        assert (await read(ai, conversation_id))["messages"][0]["text"] == "for my AI only"


async def test_feed_long_poll_returns_when_an_event_arrives(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        feed = Feed(ai)
        await feed.poll()
        cursor = feed.cursor

        started = time.monotonic()
        empty = ok(await ai.get("/api/v1/events", params={"after": cursor, "wait": 1}))
        assert empty["events"] == []
        assert time.monotonic() - started >= 0.9, "wait=1 did not wait"

        started = time.monotonic()
        poll = asyncio.create_task(ai.get("/api/v1/events", params={"after": cursor, "wait": 25}))
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("wake up")
        body = ok(await poll)
        assert time.monotonic() - started < 20, "the long poll did not return when the event arrived"
        [event] = body["events"]
        assert event["type"] == "message.created"
        assert event["conversation_id"] == created["id"]
        assert isinstance(event["id"], int)
        assert isinstance(body["cursor"], str)
        assert int(body["cursor"]) == event["id"]
        assert_timestamp(event["at"])

        # The cursor is the event id; as an integer or a string it names the same place.
        again = ok(await ai.get("/api/v1/events", params={"after": event["id"] - 1, "wait": 0}))
        assert [e["id"] for e in again["events"]] == [event["id"]]


async def test_idempotency_keys_belong_to_one_integration(module_desk: Desk) -> None:
    """Another integration that happens to use the same key gets its own escalation, never the first one's answer."""
    desk = module_desk
    first, second = desk.integration(), desk.integration()
    async with desk.api(first.token) as one, desk.api(second.token) as two:
        key = uuid.uuid4().hex
        bundle = context_bundle()
        mine = await escalate(one, bundle, key)
        same_body = await escalate(two, bundle, key)
        assert same_body["conversation_id"] != mine["conversation_id"]
        assert same_body["customer_token"] != mine["customer_token"]
        other_body = await escalate(two, context_bundle(), uuid.uuid4().hex)
        assert other_body["conversation_id"] not in (mine["conversation_id"], same_body["conversation_id"])
        error_of(await two.get(f"/api/v1/conversations/{mine['conversation_id']}"), 404, "not_found")
