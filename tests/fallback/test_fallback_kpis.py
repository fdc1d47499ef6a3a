"""The fallback engine's KPIs, the "ai" section of GET /api/v1/metrics/summary, after a mix of turns through a real
`desk serve`: answered, failing with 503, a guardrail hit and a low-confidence answer, each counted exactly; and
who may not read them.

Detections and tiers are counted from the events the turns write; the AI turn counts are flushed by each process
as `ai.stats` events every STATS_FLUSH_S, so the test waits for them under a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from desk.runtime import STATS_FLUSH_S
from tests._support import ChatSocket, Desk, Json, ServerPool, create_conversation, error_of, ok
from tests.fallback._ai import AIServer, Answer, ai_integration, reply_body, running_ai

POLICY = """\
version = "kpis-1"

[ai]
backoff_s = 0.01
backoff_max_s = 0.05

[ai.primary]
timeout_s = 3

[ai.breaker]
min_calls = 100   # the failures here must not open it: every turn reaches the AI
"""
ATTEMPTS_PER_FAILURE = 2  # the built-in `retries = 1` of [ai.primary]
TURN_TIMEOUT_S = 15.0
POLL_S = 0.5
FLUSH_DEADLINE_S = 2 * STATS_FLUSH_S + 10  # the turns may straddle a flush, and the machine may be busy

ANSWERED = ("What plans do you offer?", "Can I pay by bank transfer?", "Do you have a student discount?")
FAILING = ("Is my account still active?", "Why was my card declined?")
GUARDRAIL = "I will sue you, my lawyer"
DOUBTFUL = "Can I move to the premium plan in the middle of the month?"

ANSWER = "Happy to help with that."
DOUBTFUL_ANSWER = "Perhaps the premium plan would suit you?"
SYSTEM_ERROR_WORDS = "Sorry, our assistant is having trouble answering right now."
POLICY_WORDS = "This is something a person from our team should handle."
LOW_CONFIDENCE_WORDS = "I'm not sure I can answer that well."

TURNS = len(ANSWERED) + len(FAILING) + 1  # the guardrail keeps its message from the AI: no turn
EXPECTED_AI: Json = {
    "turns": TURNS,
    "answered": len(ANSWERED) + 1,
    "failed": len(FAILING),
    "availability": round((len(ANSWERED) + 1) / TURNS, 4),
    "attempts": {"primary.http_error": ATTEMPTS_PER_FAILURE * len(FAILING), "primary.ok": len(ANSWERED) + 1},
    "fallback_activations": {"human": len(FAILING) + 2},
    "signals": {"ai_error": len(FAILING), "guardrail": 1, "low_confidence": 1},
    "policy_breach_incidents": 1,
    "deferrals": 0,
    "breaker_openings": 0,
}


def answers(turn: Json) -> Answer:
    """The test AI: overloaded for some questions, unsure of one, helpful otherwise."""
    text = turn["message"]["text"]
    if text in FAILING:
        return 503, b'{"error": "overloaded"}', 0.0
    if text == DOUBTFUL:
        return 200, reply_body(DOUBTFUL_ANSWER, 0.3), 0.0
    return 200, reply_body(ANSWER, 0.9), 0.0


@pytest.fixture
def kpi_desk(database_url: str, server: ServerPool, tmp_path: Path) -> Desk:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return Desk(server(database_url, env={"DESK_POLICY_FILE": str(policy)}))


@pytest.fixture
def ai() -> Iterator[AIServer]:
    with running_ai() as server:
        yield server


async def ask(customer: ChatSocket, text: str, words: str) -> None:
    """The customer asks; the assistant's side answers with `words` in it."""
    await customer.say(text)
    await customer.until(
        lambda f: f.get("type") == "message" and f["author"]["kind"] == "ai" and words in f["text"],
        f"the desk saying {words!r}",
        TURN_TIMEOUT_S,
    )


async def until(condition: Callable[[], Awaitable[bool]], what: Callable[[], str], timeout: float) -> None:
    """`eventually` for a condition that has to await (an HTTP request); `what` describes it when it fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what()}")
        await asyncio.sleep(POLL_S)  # polling a condition under a deadline


async def kpis(client: httpx.AsyncClient) -> Json:
    return ok(await client.get("/api/v1/metrics/summary", params={"window": "1h"}))


async def test_the_ai_section_counts_turns_attempts_tiers_and_signals(kpi_desk: Desk, ai: AIServer) -> None:
    desk = kpi_desk
    integration = ai_integration(desk, ai)
    supervisor = desk.staff("supervisor")
    ai.answer = answers
    async with desk.api(integration.token) as client:
        conversations = [await create_conversation(client) for _ in range(3 + len(FAILING))]
    helped, threatened, doubtful, *failing = conversations

    async with desk.chat(helped["customer_token"]) as customer:
        for question in ANSWERED:
            await ask(customer, question, ANSWER)
    async with desk.chat(threatened["customer_token"]) as customer:
        await ask(customer, GUARDRAIL, POLICY_WORDS)
    async with desk.chat(doubtful["customer_token"]) as customer:
        await ask(customer, DOUBTFUL, LOW_CONFIDENCE_WORDS)
    for conversation, question in zip(failing, FAILING, strict=True):
        async with desk.chat(conversation["customer_token"]) as customer:
            await ask(customer, question, SYSTEM_ERROR_WORDS)
    assert ai.turn_count() == ATTEMPTS_PER_FAILURE * len(FAILING) + len(ANSWERED) + 1
    assert ai.turn_count(threatened["id"]) == 0, "the guardrail kept the message from the AI"

    # From the wrong side, while the stats are on their way: integrations, customers and strangers read no KPIs.
    async with desk.api(integration.token) as client:
        error_of(await client.get("/api/v1/metrics/summary", params={"window": "1h"}), 403, "forbidden")
    async with desk.api(helped["customer_token"]) as customer_api:
        error_of(await customer_api.get("/api/v1/metrics/summary", params={"window": "1h"}), 401, "unauthorized")
    async with desk.api() as anonymous:
        error_of(await anonymous.get("/api/v1/metrics/summary", params={"window": "1h"}), 401, "unauthorized")

    async with desk.api(supervisor.token) as boss:
        latest: Json = {}

        async def flushed() -> bool:
            latest.update(await kpis(boss))
            return bool(latest["ai"]["turns"] >= TURNS)

        await until(flushed, lambda: f"{TURNS} AI turns in the KPIs; last read {latest['ai']}", FLUSH_DEADLINE_S)
        summary = latest
        assert summary["ai"] == EXPECTED_AI
        assert summary["ai"]["availability"] == round(summary["ai"]["answered"] / summary["ai"]["turns"], 4)
        assert summary["overall"]["handoffs"] == 2 + len(FAILING)
        by_reason = {reason: kpi["handoffs"] for reason, kpi in summary["by_reason"].items()}
        assert by_reason == {"low_confidence": 1, "policy_violation": 1, "system_error": len(FAILING)}
