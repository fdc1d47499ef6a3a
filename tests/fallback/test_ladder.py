"""The fallback ladder end to end, through real `desk serve` processes: each tier reached from its trigger, with
what the customer saw over /ws/chat, the conversation's status and handoff, and the `signal.detected` and
`fallback.tier` events a supervisor reads on the conversation (its `fallback` timeline).

The AI is a small real HTTP server in the test (tests/fallback/_ai.py); the policy a TOML file under tmp_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from desk.fallback.policy_file import VERSION_HASH_CHARS
from desk.runtime import POLICY_CHECK_S, REQUEUE_SWEEP_S
from tests import _support as support
from tests._support import ChatSocket, Desk, Integration, Json, Staff, create_conversation, dump, read
from tests.fallback._ai import AIServer, ai_integration, eventually, reply_body, running_ai

TURN_TIMEOUT_S = 15.0
ABSENCE_S = 2.0  # how long a test watches for something that must not happen
SWEEP_SLACK_S = 3.0  # a loaded machine's delay on top of the requeue sweep's interval
LOW_CONFIDENCE_HUMAN = "I'm not sure I can answer that well. Let me bring in a person from our team."
LADDER_POLICY = 'version = "ladder-1"  # and the built-in policy for everything else\n'


def policy_version(text: str) -> str:
    """What Desk records for a policy file: its label, "+", and the start of the SHA-256 of its text."""
    label = next(line.split('"')[1] for line in text.splitlines() if line.startswith("version"))
    return f"{label}+{hashlib.sha256(text.encode()).hexdigest()[:VERSION_HASH_CHARS]}"


def write_policy(path: Path, text: str) -> str:
    path.write_text(text)
    return policy_version(text)


@dataclass
class Ladder:
    desk: Desk
    version: str
    supervisor: Staff
    ai: AIServer  # the integration's only provider
    token: str  # the integration's

    async def conversation(self) -> Json:
        async with self.desk.api(self.token) as client:
            return await create_conversation(client)


def enrol(desk: Desk, *providers: AIServer) -> tuple[Integration, Staff]:
    """An integration with these providers, and a supervisor to read its conversations. Each CLI call is a Python
    start-up: the two run side by side."""
    with ThreadPoolExecutor(2) as threads:
        integration = threads.submit(ai_integration, desk, *providers)
        supervisor = threads.submit(desk.staff, "supervisor")
        return integration.result(), supervisor.result()


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ladder]:
    """One desk on SQLite, with one AI, for the tests that change neither the policy nor the floor: each has its
    own conversations, and the AI's turns are told apart by conversation."""
    directory = tmp_path_factory.mktemp("ladder")
    policy = directory / "policy.toml"
    version = write_policy(policy, LADDER_POLICY)
    pool = support.ServerPool(directory)
    with support.database("sqlite", directory) as url, running_ai() as ai:
        try:
            desk = Desk(pool(url, env={"DESK_POLICY_FILE": str(policy)}))
            integration, supervisor = enrol(desk, ai)
            yield Ladder(desk, version, supervisor, ai, integration.token)
        finally:
            pool.stop_all()


@pytest.fixture
def ai(ladder: Ladder) -> Iterator[AIServer]:
    """The module's AI, answering confidently until the test says otherwise; every request it got was signed."""
    ladder.ai.reply("Hello from the test AI", 0.9)
    yield ladder.ai
    ladder.ai.assert_signed()


# --- what the customer sees, and what staff read ----------------------------------------------------------------


def from_desk(frame: Json) -> bool:
    return frame.get("type") == "message" and frame.get("author", {}).get("kind") == "ai"


async def hears(customer: ChatSocket, words: str, timeout: float = TURN_TIMEOUT_S) -> Json:
    """The next message from the assistant's side that contains `words`."""
    return await customer.until(lambda f: from_desk(f) and words in f["text"], f"the desk saying {words!r}", timeout)


def said_by_desk(customer: ChatSocket) -> list[str]:
    return [f["text"] for f in customer.messages() if f["author"]["kind"] == "ai"]


async def staff_view(desk: Desk, supervisor: Staff, conversation_id: str) -> Json:
    """The conversation as staff read it, with its `fallback` timeline."""
    async with desk.api(supervisor.token) as staff:
        return await read(staff, conversation_id)


def timeline(body: Json, type: str | None = None) -> list[Json]:
    return [e["data"] for e in body["fallback"] if type is None or e["type"] == type]


def signal_kinds(body: Json) -> list[str]:
    return [s["kind"] for s in timeline(body, "signal.detected")]


def tiers(body: Json) -> list[str]:
    return [t["tier"] for t in timeline(body, "fallback.tier")]


async def queued(desk: Desk, supervisor: Staff, customer: ChatSocket, conversation_id: str) -> Json:
    """Wait until the customer's status says queued; the conversation as staff read it then."""
    await customer.status("queued", TURN_TIMEOUT_S)
    body = await staff_view(desk, supervisor, conversation_id)
    assert body["status"] == "queued", body["status"]
    assert body["handoff"] is not None
    assert body["handoff"]["status"] == "queued", body["handoff"]
    return body


# --- the tiers, one trigger at a time -----------------------------------------------------------------------------


async def test_a_healthy_ai_answers_and_nothing_is_detected(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    ai.reply("We open at nine.", 0.93)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("When do you open?")
        await hears(customer, "We open at nine.")
    body = await staff_view(desk, ladder.supervisor, cid)
    assert body["status"] == "bot"
    assert body["handoff"] is None
    assert body["fallback"] == []
    assert ai.turn_texts(cid) == ["When do you open?"]
    ai.assert_signed()


async def test_low_confidence_without_a_flow_goes_to_a_person(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    ai.reply("Maybe the premium plan suits you?", 0.31)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("Can I change my plan?")
        await hears(customer, "I'm not sure I can answer that well. Let me bring in a person")
        body = await queued(desk, ladder.supervisor, customer, cid)
    assert "Maybe the premium plan" not in dump(said_by_desk(customer)), "the doubtful answer was withheld"
    handoff = body["handoff"]
    assert handoff["reason"]["code"] == "low_confidence"
    assert handoff["reason"]["confidence"] == 0.31
    assert handoff["policy_version"] == ladder.version
    assert handoff["priority"] == "normal"
    assert "confidence 0.31 under 0.5" in handoff["summary"]
    [draft] = handoff["recommended_actions"]
    assert draft["body"] == "Maybe the premium plan suits you?"
    assert signal_kinds(body) == ["low_confidence"]
    assert timeline(body, "fallback.tier") == [
        {"tier": "human", "reason": "low_confidence", "policy_version": ladder.version}
    ]


async def test_a_turn_that_fails_after_a_human_took_over_says_nothing_and_queues_nothing(
    ladder: Ladder, ai: AIServer
) -> None:
    """The AI answers doubtfully, but only after the integration escalated the conversation itself: the desk's own
    human tier must not speak over it nor open a second handoff."""
    desk = ladder.desk
    answering = threading.Event()
    doubtful = reply_body("Maybe the premium plan suits you?", 0.2)

    def late(_turn: Json) -> tuple[int, bytes, float]:
        answering.wait(TURN_TIMEOUT_S)
        return 200, doubtful, 0.0

    ai.answer = late
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer, desk.api(ladder.token) as client:
        await customer.say("Can I change my plan?")
        await eventually(lambda: ai.turn_count(cid) == 1, "the turn reached the AI")
        bundle = {"conversation_id": cid, "reason": {"code": "user_request", "detail": "asked for a person"}}
        escalated = await support.escalate(client, bundle)
        await customer.status("queued", TURN_TIMEOUT_S)
        answering.set()
        deadline = time.monotonic() + ABSENCE_S  # what must not happen has no event to wait for
        while time.monotonic() < deadline:
            body = await staff_view(desk, ladder.supervisor, cid)
            assert said_by_desk(customer) == [], "the late turn spoke after the human tier was taken"
            assert body["handoff"]["id"] == escalated["handoff_id"]
            await asyncio.sleep(0.1)
    assert body["handoff"]["reason"]["code"] == "user_request"
    assert tiers(body) == [], "no tier of the desk's took this turn"


SILENT_POLICY = """\
version = "silent-1"

[reasons.low_confidence.messages]
human = ""
"""


async def test_a_human_tier_with_nothing_to_say_still_queues(
    database_url: str, server: support.ServerPool, tmp_path: Path
) -> None:
    """A policy may leave the human tier's words empty: the desk says nothing itself, and queues all the same."""
    version = write_policy(tmp_path / "policy.toml", SILENT_POLICY)
    desk = Desk(server(database_url, env={"DESK_POLICY_FILE": str(tmp_path / "policy.toml")}))
    with running_ai() as ai:
        integration, supervisor = enrol(desk, ai)
        ai.reply("Maybe the premium plan suits you?", 0.31)
        async with desk.api(integration.token) as client:
            created = await create_conversation(client)
        cid = created["id"]
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("Can I change my plan?")
            body = await queued(desk, supervisor, customer, cid)
            assert said_by_desk(customer) == [], "nothing said in the assistant's name"
            [queued_frame] = [f for f in customer.frames if f.get("type") == "status" and f["status"] == "queued"]
    assert queued_frame["position"] >= 1
    handoff = body["handoff"]
    assert (handoff["reason"]["code"], handoff["policy_version"]) == ("low_confidence", version)
    assert [m["text"] for m in handoff["transcript"]] == ["Can I change my plan?"]
    assert [(m["author"]["kind"], m["text"]) for m in body["messages"]][-1][0] == "system"
    assert tiers(body) == ["human"]


async def test_a_per_intent_threshold_is_higher_than_the_default(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        ai.reply("Our parcels travel by bike.", 0.6)  # no intent: the default 0.5 applies, and 0.6 is over it
        await customer.say("How do you ship?")
        await hears(customer, "Our parcels travel by bike.")
        ai.reply("You can have your money back.", 0.6, intent="refund_request")  # that intent asks for 0.7
        await customer.say("Can I get a refund?")
        await hears(customer, "I'm not sure I can answer that well")
        body = await queued(desk, ladder.supervisor, customer, cid)
    handoff = body["handoff"]
    assert handoff["reason"]["code"] == "low_confidence"
    assert handoff["reason"]["detail"] == "AI confidence 0.6 under the 0.7 threshold"
    assert handoff["classification"] == {"intent": "refund_request"}
    assert handoff["recommended_actions"][0]["body"] == "You can have your money back."
    [signal] = timeline(body, "signal.detected")
    assert signal == {
        "kind": "low_confidence",
        "confidence": 0.6,
        "threshold": 0.7,
        "intent": "refund_request",
        "reason": "low_confidence",
    }


async def test_low_confidence_on_an_order_question_runs_the_order_flow(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        ai.reply("It might be in the post.", 0.2)
        await customer.say("where is my order")
        await hears(customer, "What's your order number?")
        await customer.say("my order")
        await hears(customer, "That doesn't look like an order number.")
        await customer.say("A-12345")
        await hears(customer, "And the email address you ordered with?")
        await customer.say("ada@example.com")
        answer = await hears(customer, "I've noted order")
        assert answer["text"] == (
            "Thank you. I've noted order A-12345: our team will email the tracking details to ada@example.com "
            "within the hour."
        )
        # The flow is over: the AI has the conversation again.
        ai.reply("Anything else I can do for you?", 0.9)
        await customer.say("Thanks, that is all")
        await hears(customer, "Anything else I can do for you?")
    assert ai.turn_texts(cid) == ["where is my order", "Thanks, that is all"]
    assert "It might be in the post." not in said_by_desk(customer)
    body = await staff_view(desk, ladder.supervisor, cid)
    assert body["status"] == "bot"
    assert body["handoff"] is None
    assert signal_kinds(body) == ["low_confidence"]
    assert timeline(body, "fallback.tier") == [
        {"tier": "deterministic", "reason": "low_confidence", "flow": "order_status", "policy_version": ladder.version}
    ]


async def test_missing_data_goes_down_its_own_ladder(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    ai.reply("I would need your account to check that.", 0.9, missing_data=["account_id", "invoice_date"])
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("Why was I charged twice?")
        await hears(customer, "I don't have everything I need to answer that. Let me bring in a person")
        body = await queued(desk, ladder.supervisor, customer, cid)
    handoff = body["handoff"]
    assert handoff["reason"]["code"] == "missing_data"
    assert handoff["reason"]["detail"] == "The AI lacks account_id, invoice_date"
    assert "missing data: account_id, invoice_date" in handoff["summary"]
    assert handoff["policy_version"] == ladder.version
    assert timeline(body, "signal.detected") == [
        {"kind": "missing_data", "fields": ["account_id", "invoice_date"], "reason": "missing_data"}
    ]
    assert tiers(body) == ["human"]


async def test_the_ais_own_escalation_keeps_its_bundle_with_the_desks_signals(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    bundle = {
        "reason": {"code": "other", "detail": "Discounts need a manager"},
        "priority": "high",
        "skills": ["billing"],
        "summary": "The customer wants a manager to approve a 20% discount.",
        "metadata": {"ai_run": "r-17"},
    }
    ai.reply("Let me fetch a colleague who can approve that.", 0.3, escalate=bundle)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("Can I have a 20% discount?")
        said = await hears(customer, "Let me fetch a colleague")
        assert said["text"] == "Let me fetch a colleague who can approve that. Let me bring in a person from our team."
        body = await queued(desk, ladder.supervisor, customer, cid)
    handoff = body["handoff"]
    assert handoff["summary"] == bundle["summary"]
    assert handoff["reason"] == {"code": "other", "detail": "Discounts need a manager", "confidence": 0.3}
    assert handoff["priority"] == "high"
    assert handoff["skills"] == ["billing"]
    assert handoff["metadata"]["ai_run"] == "r-17"
    [signal] = handoff["metadata"]["signals"]
    assert (signal["kind"], signal["confidence"]) == ("low_confidence", 0.3)
    assert handoff["policy_version"] == ladder.version
    assert timeline(body, "fallback.tier") == [{"tier": "human", "reason": "other", "policy_version": ladder.version}]


# --- guardrails ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule", "priority"),
    [
        ("I'll get a lawyer and sue you", "legal_threat", "high"),
        ("I just want to end my life", "self_harm", "urgent"),
    ],
    ids=["legal_threat", "self_harm"],
)
async def test_a_customer_guardrail_keeps_the_message_from_the_ai(
    ladder: Ladder, ai: AIServer, text: str, rule: str, priority: str
) -> None:
    desk = ladder.desk
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        ai.reply("Happy to help!", 0.95)
        await customer.say("Hello there")  # the wrong side first: an ordinary message reaches the AI
        await hears(customer, "Happy to help!")
        await customer.say(text)
        await hears(customer, "This is something a person from our team should handle. I'm bringing one in now.")
        body = await queued(desk, ladder.supervisor, customer, cid)
    assert ai.turn_texts(cid) == ["Hello there"], "the guarded message went to the AI"
    handoff = body["handoff"]
    assert handoff["reason"]["code"] == "policy_violation"
    assert handoff["priority"] == priority
    assert handoff["sla_due_at"] is not None
    assert f"guardrail {rule} (customer)" in handoff["summary"]
    [signal] = timeline(body, "signal.detected")
    assert (signal["kind"], signal["rule"], signal["where"], signal["action"]) == (
        "guardrail",
        rule,
        "customer",
        "handoff",
    )
    assert text not in dump(timeline(body)), "signals never hold the customer's text"
    assert tiers(body) == ["human"]


async def test_payment_data_in_an_answer_is_withheld(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    ai.reply("Sure: the card on file is 4111 1111 1111 1111, expiring 04/29.", 0.97)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("Which card did I pay with?")
        await hears(customer, "This is something a person from our team should handle.")
        body = await queued(desk, ladder.supervisor, customer, cid)
    assert "4111" not in dump(customer.frames), "the card number reached the customer"
    handoff = body["handoff"]
    assert "4111" not in dump(handoff), "the withheld answer is not offered as a draft"
    assert handoff["recommended_actions"] == []
    assert handoff["reason"]["code"] == "policy_violation"
    assert handoff["priority"] == "high"
    assert "guardrail payment_data (ai)" in handoff["summary"]
    [signal] = timeline(body, "signal.detected")
    assert signal == {
        "kind": "guardrail",
        "rule": "payment_data",
        "category": "payment_data",
        "where": "ai",
        "action": "block",
        "matched": "pattern",
        "reason": "policy_violation",
    }


# --- frustration ---------------------------------------------------------------------------------------------------


async def test_asking_for_a_person_wins_over_a_good_answer(ladder: Ladder, ai: AIServer) -> None:
    desk = ladder.desk
    ai.reply("I can help with that myself!", 0.95)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say("I want to talk to a person")
        await hears(customer, "Of course. Let me bring in a person from our team.")
        body = await queued(desk, ladder.supervisor, customer, cid)
    assert ai.turn_texts(cid) == ["I want to talk to a person"]
    assert "I can help with that myself!" not in said_by_desk(customer)
    handoff = body["handoff"]
    assert handoff["reason"] == {
        "code": "user_request",
        "detail": "The customer asked for a person",
        "confidence": 0.95,
    }
    assert handoff["priority"] == "normal"
    assert "frustration: asks_human" in handoff["summary"]
    assert handoff["recommended_actions"][0]["body"] == "I can help with that myself!"
    assert timeline(body, "signal.detected") == [
        {"kind": "frustration", "frustration": "asks_human", "phrase": "talk to a person", "reason": "user_request"}
    ]


@pytest.mark.parametrize(
    ("first", "second", "kind"),
    [
        ("How do I reset my password?", "How do I reset my password?", "repeat"),
        ("How do I reset my password?", "This is useless and ridiculous", "negative"),
    ],
    ids=["same_question_twice", "negative_words"],
)
async def test_frustration_goes_to_a_person(ladder: Ladder, ai: AIServer, first: str, second: str, kind: str) -> None:
    desk = ladder.desk
    ai.reply("Use the 'Forgot password' link.", 0.9)
    created = await ladder.conversation()
    cid = created["id"]
    async with desk.chat(created["customer_token"]) as customer:
        await customer.say(first)  # once is no frustration: the answer is delivered
        await hears(customer, "Use the 'Forgot password' link.")
        await customer.say(second)
        await hears(customer, "I'm sorry this has been frustrating. Let me bring in a person from our team.")
        body = await queued(desk, ladder.supervisor, customer, cid)
    assert said_by_desk(customer).count("Use the 'Forgot password' link.") == 1
    handoff = body["handoff"]
    assert handoff["reason"] == {
        "code": "user_frustration",
        "detail": f"Customer frustration ({kind})",
        "confidence": 0.9,
    }
    assert handoff["priority"] == "high"
    assert f"frustration: {kind}" in handoff["summary"]
    [signal] = timeline(body, "signal.detected")
    assert (signal["kind"], signal["frustration"]) == ("frustration", kind)
    assert tiers(body) == ["human"]


# --- the whole ladder in one conversation -------------------------------------------------------------------------

CHAIN_POLICY = """\
version = "chain-1"

[ai]
backoff_s = 0.01
backoff_max_s = 0.05

[ai.primary]
timeout_s = 0.5
retries = 1

[ai.secondary]
timeout_s = 2.0
retries = 0

[deferral]
when_nobody_online = true
"""


async def test_the_whole_chain_in_one_conversation(
    database_url: str, server: support.ServerPool, tmp_path: Path
) -> None:
    """Primary hangs (twice) → secondary 503 → order flow → the customer cannot answer → nobody online → deferral →
    callback → back in the queue by itself."""
    version = write_policy(tmp_path / "policy.toml", CHAIN_POLICY)
    desk = Desk(server(database_url, env={"DESK_POLICY_FILE": str(tmp_path / "policy.toml")}))
    with running_ai() as primary, running_ai() as secondary:
        integration, supervisor = enrol(desk, primary, secondary)  # the supervisor never opens the desk
        primary.hang()
        secondary.fail(503)
        async with desk.api(integration.token) as client:
            created = await create_conversation(client)
        cid = created["id"]
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("where is my order")
            await hears(customer, "What's your order number?")
            assert (primary.turn_count(cid), secondary.turn_count(cid)) == (2, 1)
            for bad in ("I don't know it", "no idea", "somewhere in a drawer"):
                await customer.say(bad)
            await hears(customer, "We can get back to you instead.")
            await customer.status("deferred")
            await customer.say("you can write to ada@example.com")
            await hears(customer, "When would suit you?")
            await customer.say("as soon as possible")
            await hears(customer, "We'll get back to you at ada@example.com around")
            deferred = await customer.status("deferred")  # callback.scheduled refreshes it
            scheduled_at = time.monotonic()
            requeued = await customer.status("queued", REQUEUE_SWEEP_S + TURN_TIMEOUT_S)
            waited_s = time.monotonic() - scheduled_at
        primary.assert_signed()
        secondary.assert_signed()
        assert (primary.turn_count(cid), secondary.turn_count(cid)) == (2, 1), "the flow's answers went to no AI"

    assert said_by_desk(customer) == [
        "Our assistant is having trouble right now, so I'll help you with this myself.",
        "I can look into your order. What's your order number? (It looks like A-12345.)",
        "That doesn't look like an order number. It's on your confirmation email, like A-12345.",
        "That doesn't look like an order number. It's on your confirmation email, like A-12345.",
        "Sorry, our assistant is having trouble right now and nobody from our team can join at the moment.",
        "We can get back to you instead. How can we reach you: an email address or a phone number?",
        "When would suit you? (e.g. 'tomorrow 10:00', '14:30', or 'any time')",
        said_by_desk(customer)[7],
    ]
    assert said_by_desk(customer)[7].startswith("Thank you. We'll get back to you at ada@example.com around ")
    assert "This answer came too late" not in dump(customer.frames)
    assert deferred["deferred_until"] is not None
    assert requeued.get("position") == 1
    assert waited_s < REQUEUE_SWEEP_S + SWEEP_SLACK_S, f"back in the queue only after {waited_s:.1f} s"
    statuses = [f["status"] for f in customer.frames if f.get("type") == "status"]
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == ["bot", "deferred", "queued"]

    body = await staff_view(desk, supervisor, cid)
    assert body["status"] == "queued"
    assert body["deferred_until"] is None
    handoff = body["handoff"]
    assert handoff["status"] == "queued"
    assert handoff["reason"]["code"] == "system_error"
    assert handoff["reason"]["detail"] == "The order_status flow could not collect order_number"
    assert handoff["priority"] == "high"
    assert handoff["policy_version"] == version
    deferral = handoff["metadata"]["deferral"]
    assert deferral["cause"] == "nobody_online"
    assert deferral["callback"]["contact"] == "ada@example.com"
    assert deferral["callback"]["at"] is not None
    assert deferral["requeued_at"] is not None

    assert [e["type"] for e in body["fallback"]] == [
        "signal.detected",
        "fallback.tier",
        "conversation.deferred",
        "fallback.tier",
        "callback.scheduled",
        "handoff.requeued",
    ]
    [signal] = timeline(body, "signal.detected")
    assert signal["kind"] == "ai_error"
    assert signal["reason"] == "system_error"
    assert signal["error"] == "http_error"
    assert (signal["role"], signal["status"], signal["attempts"]) == ("secondary", 503, 3)
    assert timeline(body, "fallback.tier") == [
        {"tier": "deterministic", "reason": "system_error", "flow": "order_status", "policy_version": version},
        {"tier": "deferral", "reason": "system_error", "cause": "nobody_online", "policy_version": version},
    ]
    [scheduled] = timeline(body, "callback.scheduled")
    assert scheduled["contact"] == "ada@example.com"
    [back] = timeline(body, "handoff.requeued")
    assert back["callback"] == deferral["callback"]


# --- a changed policy file, without a restart ----------------------------------------------------------------------

RELOAD_POLICY = """\
version = "{label}"

[detect]
confidence_threshold = {threshold}
"""
QUESTIONS = (
    "Is there a student discount?",
    "Can I pay by invoice?",
    "Do you sell gift cards?",
    "How heavy is the big box?",
    "Which colours does the lamp come in?",
    "Are your mugs dishwasher safe?",
    "Could I collect from the shop?",
    "Where are your products made?",
    "What sizes do the shirts run in?",
    "Is gift wrapping available?",
    "May I change the delivery address?",
    "Does the warranty cover water damage?",
)
RELOAD_POLL_S = 0.5


async def ask_until_routed(customer: ChatSocket) -> int:
    """Ask new questions (an AI answer at 0.7 each) until one goes down the ladder instead of being delivered;
    how many were delivered before. The policy is looked at every POLICY_CHECK_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLICY_CHECK_S * 4
    for delivered, question in enumerate(QUESTIONS):
        await customer.say(question)
        frame = await customer.until(
            lambda f: from_desk(f) and f["text"] in ("A confident enough answer.", LOW_CONFIDENCE_HUMAN),
            "an answer or the ladder",
        )
        if frame["text"] == LOW_CONFIDENCE_HUMAN:
            return delivered
        assert loop.time() < deadline, f"still delivering answers at 0.7 {POLICY_CHECK_S * 4} s after the change"
        await asyncio.sleep(RELOAD_POLL_S)  # polling a condition (the reloaded policy) under a deadline
    return len(QUESTIONS)


INVALID_POLICY = """\
version = "reload-broken"
[detect]
confidence_threshold = "high"
"""


async def test_the_policy_file_is_reloaded_without_a_restart(server: support.ServerPool, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    first = write_policy(path, RELOAD_POLICY.format(label="reload-1", threshold=0.5))
    with support.database("sqlite", tmp_path) as url, running_ai() as ai:
        running = server(url, env={"DESK_POLICY_FILE": str(path)})
        desk = Desk(running)
        integration, supervisor = enrol(desk, ai)
        ai.reply("A confident enough answer.", 0.7)
        async with desk.api(integration.token) as client:
            one, two = await create_conversation(client), await create_conversation(client)
        async with desk.chat(one["customer_token"]) as customer:
            await customer.say("Do you ship to Norway?")
            await hears(customer, "A confident enough answer.")

            second = write_policy(path, RELOAD_POLICY.format(label="reload-2", threshold=0.9))
            delivered = await ask_until_routed(customer)
            body = await queued(desk, supervisor, customer, one["id"])
        assert delivered < len(QUESTIONS), "answers at 0.7 were still delivered after the reload"
        assert body["handoff"]["policy_version"] == second != first
        assert body["handoff"]["reason"]["detail"] == "AI confidence 0.7 under the 0.9 threshold"

        path.write_text(INVALID_POLICY)
        problem = f"{path}:3: detect.confidence_threshold: expected a number, got a string"
        await eventually(lambda: problem in running.log_tail(), "the server naming the problem in its log")
        assert f"policy file not reloaded, still using {second}" in running.log_tail()
        async with desk.chat(two["customer_token"]) as customer:
            await customer.say("Can I pay by invoice?")
            await hears(customer, LOW_CONFIDENCE_HUMAN)
            body = await queued(desk, supervisor, customer, two["id"])
        assert body["handoff"]["policy_version"] == second
