"""The customer socket `/ws/chat`: acks, idempotent resends, resume after a disconnect, isolation."""

from __future__ import annotations

import asyncio
import uuid

from tests._support import (
    SNAKE_CASE,
    Desk,
    assert_gapless,
    claim,
    context_bundle,
    create_conversation,
    dump,
    escalate,
    message_seqs,
    post_message,
    read,
)


async def test_resend_with_same_client_id_stores_one_message(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        client_id = str(uuid.uuid4())
        async with desk.chat(created["customer_token"]) as customer:
            first = await customer.say("Is anyone there?", client_id)
            second = await customer.say("Is anyone there?", client_id)
            assert second["seq"] == first["seq"]
        # A resend after a reconnect (the ack was lost) is still the same message.
        async with desk.chat(created["customer_token"]) as customer:
            third = await customer.say("Is anyone there?", client_id)
            assert third["seq"] == first["seq"]
            other = await customer.say("Hello?")
            assert other["seq"] == first["seq"] + 1
        conversation = await read(ai, created["id"])
        assert [m["text"] for m in conversation["messages"]] == ["Is anyone there?", "Hello?"]
        assert_gapless(conversation)


async def test_ai_resend_with_same_client_id_stores_one_message(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        body = {"text": "Welcome!", "client_id": uuid.uuid4().hex}
        url = f"/api/v1/conversations/{created['id']}/messages"
        first = await ai.post(url, json=body)
        second = await ai.post(url, json=body)
        assert first.status_code == 201, first.text
        assert second.status_code in (200, 201), second.text
        assert second.json()["seq"] == first.json()["seq"]
        assert message_seqs(await read(ai, created["id"])) == [first.json()["seq"]]


async def test_resume_delivers_exactly_the_missed_messages(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        created = await create_conversation(ai)
        conversation_id = created["id"]
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("My parcel is late.")
            await post_message(ai, conversation_id, "Which order is it?")
            frame = await customer.message("Which order is it?")
            last_seen = frame["seq"]

        # While the customer is away: the AI answers, escalates, an agent joins and writes.
        await post_message(ai, conversation_id, "Let me get a colleague.")
        await escalate(ai, context_bundle(conversation_id=conversation_id))
        await claim(staff, conversation_id)
        await post_message(staff, conversation_id, "Hi, I'm on it.")
        await post_message(staff, conversation_id, "It ships tomorrow.")

        async with desk.chat(created["customer_token"]) as customer:
            mark = customer.mark()
            await customer.send({"type": "resume", "after_seq": last_seen})
            sentinel = await post_message(staff, conversation_id, "Anything else?")
            await customer.message("Anything else?")
            received = customer.messages(customer.since(mark))

        conversation = await read(ai, conversation_id)
        assert_gapless(conversation)
        expected = [m for m in conversation["messages"] if m["seq"] > last_seen]
        assert expected[-1]["seq"] == sentinel["seq"]
        assert [f["seq"] for f in received] == [m["seq"] for m in expected], (
            f"after resume from {last_seen}: got {[(f['seq'], f['text']) for f in received]}"
        )
        assert [f["text"] for f in received] == [m["text"] for m in expected]
        assert [f["author"]["kind"] for f in received] == [m["author"]["kind"] for m in expected]


async def test_resume_from_zero_replays_the_whole_conversation_once(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        conversation_id = created["id"]
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("one")
            await post_message(ai, conversation_id, "two")
            await customer.message("two")
            await customer.say("three")
        async with desk.chat(created["customer_token"]) as customer:
            mark = customer.mark()
            await customer.send({"type": "resume", "after_seq": 0})
            await post_message(ai, conversation_id, "four")
            await customer.message("four")
            received = customer.messages(customer.since(mark))
        assert [(f["seq"], f["text"]) for f in received] == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]
        assert [f["author"]["kind"] for f in received] == ["customer", "ai", "customer", "ai"]


async def test_customer_sees_only_its_own_conversation(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        mine = await create_conversation(ai)
        theirs = await create_conversation(ai)
        async with desk.chat(mine["customer_token"]) as customer:
            await customer.status("bot")
            await post_message(ai, theirs["id"], "Secret for the other customer")
            # A frame naming another conversation still only ever writes to the socket's own conversation.
            await customer.send(
                {"type": "message", "client_id": str(uuid.uuid4()), "text": "sneaky", "conversation_id": theirs["id"]}
            )
            await customer.send({"type": "resume", "after_seq": 0, "conversation_id": theirs["id"]})
            await post_message(ai, mine["id"], "Sentinel for mine")
            await customer.message("Sentinel for mine")
            assert "Secret for the other customer" not in dump(customer.frames)
        other = await read(ai, theirs["id"])
        assert [m["text"] for m in other["messages"]] == ["Secret for the other customer"]


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        async with desk.chat(created["customer_token"]) as customer:
            await customer.ws.send("{not json")
            error = await customer.until(lambda f: f.get("type") == "error", "an error frame")
            assert error["code"] == "invalid_json"
            assert error["message"]
            for bad in (
                {"type": "message", "client_id": str(uuid.uuid4())},
                {"type": "message", "client_id": str(uuid.uuid4()), "text": 42},
                {"type": "resume", "after_seq": "yesterday"},
                {"type": "rating", "score": 11},
                {"type": "no-such-frame"},
                ["a", "list"],
            ):
                # The contract leaves the frame error codes open; they are codes, and not a crash.
                await customer.send(bad)
                error = await customer.until(lambda f: f.get("type") == "error", f"an error frame for {bad}")
                assert SNAKE_CASE.match(error["code"]), (bad, error)
                assert error["code"] != "internal_error", (bad, error)
                assert error["message"], (bad, error)
            ack = await customer.say("still here")
            assert ack["seq"] == 1
        conversation = await read(ai, created["id"])
        assert [m["text"] for m in conversation["messages"]] == ["still here"]


async def test_customer_page(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff, desk.api() as anonymous:
        handoff = await escalate(ai, context_bundle())
        await claim(staff, handoff["conversation_id"])
        await post_message(staff, handoff["conversation_id"], "a reply the customer may see")
        await post_message(staff, handoff["conversation_id"], "NOTE-never-on-the-page", internal=True)
        page = await anonymous.get(handoff["chat_url"])
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "NOTE-never-on-the-page" not in page.text
        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.send({"type": "resume", "after_seq": 0})
            await customer.message("a reply the customer may see")
            await post_message(staff, handoff["conversation_id"], "sentinel")
            await customer.message("sentinel")
            assert "NOTE-never-on-the-page" not in dump(customer.frames)
        missing = await anonymous.get("/chat/dskc_not-a-real-token")
        assert missing.status_code == 404


async def test_concurrent_writers_get_gapless_unique_seqs(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        async with desk.chat(handoff["customer_token"]) as customer:
            client_ids = [str(uuid.uuid4()) for _ in range(15)]
            for index, client_id in enumerate(client_ids):
                await customer.send({"type": "message", "client_id": client_id, "text": f"customer {index}"})
            posted = await asyncio.gather(*(post_message(staff, cid, f"agent {index}") for index in range(15)))
            acks = [await customer.ack(client_id) for client_id in client_ids]
            await customer.message("agent 14")
        seqs = [a["seq"] for a in acks] + [p["seq"] for p in posted]
        assert len(set(seqs)) == len(seqs), sorted(seqs)
        assert [a["seq"] for a in acks] == sorted(a["seq"] for a in acks), "one socket's messages reordered"
        conversation = await read(staff, cid)
        assert_gapless(conversation)
        by_seq = {m["seq"]: m["text"] for m in conversation["messages"]}
        for index, ack in enumerate(acks):
            assert by_seq[ack["seq"]] == f"customer {index}"
        for index, answer in enumerate(posted):
            assert by_seq[answer["seq"]] == f"agent {index}"


async def test_typing_reaches_the_other_side_only(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    holder, bystander = desk.staff("agent", name="Tilda Typing"), desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(holder.token) as staff:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        async with (
            desk.chat(handoff["customer_token"]) as customer,
            desk.staff_socket(holder.token) as holder_ws,
            desk.staff_socket(bystander.token) as bystander_ws,
        ):
            await customer.status("assigned")
            await customer.send({"type": "typing"})
            seen = await holder_ws.until(lambda f: f.get("type") == "typing", "the customer typing")
            assert seen["conversation_id"] == cid
            assert seen["author"]["kind"] == "customer"

            await holder_ws.send({"type": "typing", "conversation_id": cid})
            typing = await customer.until(lambda f: f.get("type") == "typing", "the agent typing")
            assert typing["author"] == {"kind": "agent", "name": "Tilda Typing"}

            # A later message is the barrier: everything sent before it has been delivered.
            await post_message(staff, cid, "after the typing")
            await customer.message("after the typing")
            await bystander_ws.send({"type": "typing", "conversation_id": cid})  # not theirs: goes nowhere
            await holder_ws.event("message.created", cid)
        assert not [f for f in bystander_ws.frames if f.get("type") == "typing"], "typing leaked to a bystander"
        assert [f for f in customer.frames if f.get("type") == "typing"] == [typing]


async def test_rating_lands_on_the_learning_entry(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        resolved = await staff.post(f"/api/v1/conversations/{cid}/resolve", json={"outcome": {"resolution": "done"}})
        assert resolved.status_code == 200, resolved.text
        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.status("resolved")
            await customer.send({"type": "rating", "score": 5, "comment": "quick and kind"})
            await customer.say("thanks!")  # acked after the rating was handled: a barrier
        entries = (await staff.get("/api/v1/learning-log")).json()["items"]
        [entry] = [e for e in entries if e["conversation_id"] == cid]
        assert entry["csat"] == 5
        assert entry["outcome"]["csat_comment"] == "quick and kind"


async def test_rating_before_any_human_help_is_refused(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        created = await create_conversation(ai)
        async with desk.chat(created["customer_token"]) as customer:
            await customer.send({"type": "rating", "score": 4})
            error = await customer.until(lambda f: f.get("type") == "error", "an error frame")
            assert error["code"] == "nothing_to_rate"


async def test_the_queue_position_follows_the_queue(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        ahead = [await escalate(ai, context_bundle(priority="urgent")) for _ in range(2)]
        handoff = await escalate(ai, context_bundle(priority="urgent"))
        async with desk.chat(handoff["customer_token"]) as customer:
            first = await customer.status("queued")
            assert first["position"] == handoff["position"]
            # Nothing happens to this conversation, but the queue ahead of it moves: the place is re-read while
            # queued (every 10 s) and sent when it changed.
            await claim(staff, ahead[0]["conversation_id"])
            moved = await customer.until(
                lambda f: f.get("type") == "status" and f.get("position") == first["position"] - 1,
                "a status frame with the new place in line",
                timeout=20,
            )
            assert moved["status"] == "queued"
        statuses = [f for f in customer.frames if f.get("type") == "status"]
        assert [f["position"] for f in statuses] == [first["position"], first["position"] - 1], "sent only on change"


async def test_writing_after_the_end_reopens_and_says_so(module_live_desk: Desk) -> None:
    desk = module_live_desk
    integration = desk.integration()
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle())
        cid = handoff["conversation_id"]
        await claim(staff, cid)
        resolved = await staff.post(f"/api/v1/conversations/{cid}/resolve", json={"outcome": {"resolution": "done"}})
        assert resolved.status_code == 200, resolved.text
        async with desk.chat(handoff["customer_token"]) as customer:
            await customer.status("resolved")
            await customer.say("One more question")
            await customer.status("bot")
        assert (await read(ai, cid))["status"] == "bot"
