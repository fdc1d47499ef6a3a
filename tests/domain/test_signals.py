"""Detection signals: each kind from its trigger and not from its near misses, the deciding signal, redaction."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from typing import Any

import pytest

from desk.domain import signals
from desk.domain.policy import (
    AIPolicy,
    Deferral,
    Detection,
    Frustration,
    Guardrail,
    GuardrailAction,
    Policy,
    ReasonPolicy,
    Tier,
)
from desk.domain.signals import (
    REDACTED,
    Signal,
    ai_error,
    check_ai_text,
    check_answer,
    check_customer,
    deciding,
    redact,
    similarity,
)
from desk.fallback.policy_file import load_policy

CARD = "4111 1111 1111 1111"

# The built-in policy's rules (desk/fallback/default_policy.toml), written out so these tests do not depend on the
# file reader; `test_built_in_policy` runs the same checks on the file itself.
HUMAN_PHRASES = (
    "talk to a person", "speak to a person", "talk to a human", "speak to a human", "real person", "a human please",
    "human agent", "speak to someone", "talk to someone", "customer service agent", "representative", "operator",
    "speak to an agent", "talk to an agent", "live agent",
)  # fmt: skip
NEGATIVE_WORDS = (
    "useless", "ridiculous", "terrible", "awful", "worst", "stupid", "angry", "furious", "unacceptable", "annoyed",
    "frustrated", "frustrating", "horrible", "pathetic", "waste of time", "fed up", "hopeless",
)  # fmt: skip


def guardrail(name: str, action: GuardrailAction, **fields: Any) -> Guardrail:
    defaults: dict[str, Any] = {"category": name, "applies_to": ("customer",), "keywords": (), "patterns": ()}
    return Guardrail(name=name, action=action, **{**defaults, **fields})


GUARDRAILS = (
    guardrail(
        "self_harm",
        GuardrailAction.HANDOFF,
        keywords=("kill myself", "suicide", "end my life", "hurt myself", "self harm", "self-harm"),
        priority="urgent",
    ),
    guardrail(
        "legal_threat",
        GuardrailAction.HANDOFF,
        keywords=("lawyer", "attorney", "sue you", "lawsuit", "legal action", "take you to court"),
        skills=("legal",),
    ),
    guardrail(
        "payment_data",
        GuardrailAction.BLOCK,
        applies_to=("customer", "ai"),
        patterns=(r"\b(?:\d[ -]?){13,19}\b", r"\bcvv\s*:?\s*\d{3,4}\b"),
    ),
    guardrail(
        "ai_promises",
        GuardrailAction.BLOCK,
        category="unauthorised_commitment",
        applies_to=("ai",),
        keywords=("i guarantee", "full refund guaranteed", "we will compensate"),
        priority="normal",
    ),
)

_versions = itertools.count()


def make_policy(
    *, guardrails: tuple[Guardrail, ...] = GUARDRAILS, version: str | None = None, **frustration: Any
) -> Policy:
    """A policy like the built-in one; `frustration` overrides fields of `Frustration`."""
    rules = {"human_phrases": HUMAN_PHRASES, "negative_words": NEGATIVE_WORDS, **frustration}
    return Policy(
        version=version or f"test-{next(_versions)}",
        ai=AIPolicy(latency_limit_s=5.0),
        detect=Detection(
            confidence_threshold=0.5,
            intent_thresholds={"refund_request": 0.7, "account_deletion": 0.8},
            frustration=Frustration(**rules),
        ),
        guardrails=guardrails,
        reasons={"other": ReasonPolicy(tiers=(Tier.HUMAN, Tier.DEFERRAL))},
        flows=(),
        hours=None,
        deferral=Deferral(),
    )


POLICY = make_policy()


def kinds(found: list[Signal]) -> list[tuple[str, Any]]:
    return [(s.kind, s.values.get("rule") or s.values.get("kind")) for s in found]


# --- guardrails -------------------------------------------------------------------------------------------------


def test_a_keyword_hands_off_with_the_rules_priority_and_skills() -> None:
    [found] = check_customer(POLICY, "I will talk to my LAWYER about this.", [])
    values = {"rule": "legal_threat", "category": "legal_threat", "where": "customer", "action": "handoff"}
    assert found == Signal(
        "guardrail", {**values, "matched": "keyword"}, "policy_violation", priority="high", skills=("legal",)
    )


@pytest.mark.parametrize(
    "text",
    [
        "Our lawyers will be in touch",  # keywords are words, not stems: the plural is its own keyword
        "a suicidesquad poster",
        "my attorneys said so",
        "I want to kill myselfish habits",
        "pursue your dreams",  # "sue you" inside other words
    ],
)
def test_a_keyword_inside_another_word_is_no_match(text: str) -> None:
    assert check_customer(POLICY, text, []) == []


@pytest.mark.parametrize("text", ["I want to kill   myself", "i want to KILL\nMYSELF", "(suicide)", "self-harm!"])
def test_a_keyword_matches_across_case_whitespace_and_punctuation(text: str) -> None:
    [found] = check_customer(POLICY, text, [])
    assert (found.values["rule"], found.priority) == ("self_harm", "urgent")


def test_keywords_with_non_word_edges_match_as_whole_words() -> None:
    policy = make_policy(guardrails=(guardrail("tech", GuardrailAction.FLAG, keywords=("c++", "#refund")),))
    assert kinds(check_customer(policy, "Do you support C++?", [])) == [("guardrail", "tech")]
    assert kinds(check_customer(policy, "about #REFUND now", [])) == [("guardrail", "tech")]
    assert check_customer(policy, "abc++ and x#refund and #refunds", []) == []


def test_a_pattern_blocks_and_its_values_hold_no_matched_text() -> None:
    text = f"my card is {CARD}, cvv 123"
    [found] = check_customer(POLICY, text, [])
    assert (found.values["matched"], found.reason, found.blocks) == ("pattern", "policy_violation", True)
    data = json.dumps(found.event_data())
    assert not [secret for secret in ("4111", "123", "cvv") if secret in data]


def test_a_pattern_near_miss_is_no_match() -> None:
    assert check_customer(POLICY, "order 123456789012 is late", []) == []  # 12 digits: not a card number
    assert check_customer(POLICY, "what is a cvv?", []) == []


def test_disguising_characters_do_not_hide_a_match() -> None:
    assert kinds(check_customer(POLICY, "sui\u200bcide", [])) == [("guardrail", "self_harm")]
    assert kinds(check_customer(POLICY, "4111\u200b1111\u20601111\u200c1111", [])) == [("guardrail", "payment_data")]


def test_a_flag_is_recorded_and_routes_nowhere() -> None:
    policy = make_policy(guardrails=(guardrail("competitor", GuardrailAction.FLAG, keywords=("acme",)),))
    [found] = check_customer(policy, "Acme does it cheaper", [])
    assert (found.reason, found.blocks, found.values["action"]) == (None, False, "flag")
    assert deciding([found]) is None


def test_rules_apply_only_where_they_say() -> None:
    promise = "I guarantee it arrives tomorrow"
    assert check_customer(POLICY, promise, []) == []  # ai_promises applies to the AI only
    [found] = check_ai_text(POLICY, promise)
    assert found.values == {
        "rule": "ai_promises",
        "category": "unauthorised_commitment",
        "where": "ai",
        "action": "block",
        "matched": "keyword",
    }
    assert (found.priority, found.blocks) == ("normal", True)
    assert check_ai_text(POLICY, "please don't call a lawyer") == []  # legal_threat applies to the customer only
    assert kinds(check_ai_text(POLICY, f"Your card {CARD}")) == [("guardrail", "payment_data")]


def test_every_rule_that_matches_gives_a_signal() -> None:
    found = check_customer(POLICY, f"my lawyer has my card {CARD}", [])
    assert kinds(found) == [("guardrail", "legal_threat"), ("guardrail", "payment_data")]


# --- frustration ------------------------------------------------------------------------------------------------


def test_asking_for_a_human_names_the_policys_phrase() -> None:
    [found] = check_customer(POLICY, "Can I   SPEAK TO A HUMAN please", [])
    assert found == Signal("frustration", {"kind": "asks_human", "phrase": "speak to a human"}, "user_request")


@pytest.mark.parametrize(
    "text", ["the cooperator said", "our representatives", "a humane person", "talk to a personal trainer"]
)
def test_a_human_phrase_inside_other_words_is_no_request(text: str) -> None:
    assert check_customer(POLICY, text, []) == []


def test_negative_words_count_once_each_at_or_over_the_threshold() -> None:
    [found] = check_customer(POLICY, "This is USELESS and a waste   of time", [])
    assert found == Signal("frustration", {"kind": "negative", "words": 2, "threshold": 2}, "user_frustration")
    assert check_customer(POLICY, "useless, useless, useless!", []) == []  # one distinct word, under 2
    assert check_customer(POLICY, "this is uselessness and awfully slow", []) == []
    strict = make_policy(negative_threshold=3)
    assert check_customer(strict, "useless and terrible", []) == []
    assert kinds(check_customer(strict, "useless, terrible, awful", [])) == [("frustration", "negative")]


def test_the_same_question_again_is_a_repeat() -> None:
    earlier = ["Where is my order?", "hello", "where is MY order!!"]
    [found] = check_customer(POLICY, "where  is my order", earlier)
    assert found == Signal("frustration", {"kind": "repeat", "similarity": 1.0, "repeats": 2}, "user_frustration")


def test_a_different_or_short_message_is_no_repeat() -> None:
    assert check_customer(POLICY, "where is my refund", ["where is my order"]) == []  # 3/5 alike
    assert check_customer(POLICY, "yes please", ["yes please", "Yes, please!"]) == []  # under 3 words
    assert check_customer(POLICY, "no no no", ["no no no"]) == []  # one distinct word
    assert check_customer(POLICY, "where is my order", []) == []


def test_only_the_last_ten_earlier_messages_are_compared() -> None:
    old = ["where is my order", *[f"message number {n} here" for n in range(10)]]
    assert check_customer(POLICY, "where is my order", old) == []
    assert kinds(check_customer(POLICY, "where is my order", old[:-1])) == [("frustration", "repeat")]


def test_repeat_similarity_and_count_are_thresholds_reached_exactly() -> None:
    assert similarity("where is my order", "where is my order now") == 0.8
    at = make_policy(repeat_similarity=0.8)
    assert kinds(check_customer(at, "where is my order", ["where is my order now"])) == [("frustration", "repeat")]
    over = make_policy(repeat_similarity=0.81)
    assert check_customer(over, "where is my order", ["where is my order now"]) == []
    twice = make_policy(repeats=2)
    assert check_customer(twice, "where is my order", ["where is my order"]) == []
    assert len(check_customer(twice, "where is my order", ["where is my order"] * 2)) == 1


def test_similarity_is_word_overlap_and_nothing_for_short_texts() -> None:
    assert similarity("Where is MY order?", "where is my order") == 1.0
    assert similarity("a b c", "d e f") == 0.0
    assert similarity("ok", "ok") == 0.0


# --- answers and AI errors --------------------------------------------------------------------------------------


def answer(**fields: Any) -> list[Signal]:
    arguments: dict[str, Any] = {"confidence": 0.9, "intent": None, "latency_s": 0.1, "missing_data": [], **fields}
    return check_answer(POLICY, **arguments)


def test_low_confidence_is_under_the_intents_threshold() -> None:
    [found] = answer(confidence=0.49)
    assert found == Signal("low_confidence", {"confidence": 0.49, "threshold": 0.5, "intent": None}, "low_confidence")
    assert answer(confidence=0.5) == []
    assert answer(confidence=None) == []
    assert answer(confidence=0.6, intent="greeting") == []
    [refund] = answer(confidence=0.6, intent="refund_request")
    assert refund.values == {"confidence": 0.6, "threshold": 0.7, "intent": "refund_request"}
    assert answer(confidence=0.7, intent="refund_request") == []


def test_latency_over_the_limit_is_recorded_only() -> None:
    [found] = answer(latency_s=5.2504)
    assert found == Signal("latency", {"latency_ms": 5250, "limit_ms": 5000}, None)
    assert answer(latency_s=5.0) == []
    assert deciding([found]) is None


def test_missing_data_names_the_fields_once() -> None:
    [found] = answer(missing_data=["order_number", "email", "order_number"])
    assert found == Signal("missing_data", {"fields": ["order_number", "email"]}, "missing_data")
    assert answer(missing_data=()) == []


def test_an_ai_error_is_a_system_error() -> None:
    found = ai_error("http_error", role="primary", attempts=2, status=503, latency_s=0.4567, detail="x" * 500)
    assert (found.kind, found.reason) == ("ai_error", "system_error")
    assert found.values == {
        "error": "http_error",
        "role": "primary",
        "attempts": 2,
        "status": 503,
        "latency_ms": 457,
        "detail": "x" * signals.DETAIL_MAX,
    }
    with pytest.raises(ValueError, match="unknown AI error kind 'oops'"):
        ai_error("oops", role="primary", attempts=1, status=None, latency_s=0.0, detail="")


def test_event_data_keeps_the_signal_kind_and_reason() -> None:
    [request] = check_customer(POLICY, "real person please", [])
    assert request.event_data() == {
        "kind": "frustration",
        "frustration": "asks_human",
        "phrase": "real person",
        "reason": "user_request",
    }
    [latency] = answer(latency_s=6.0)
    assert latency.event_data() == {"kind": "latency", "latency_ms": 6000, "limit_ms": 5000, "reason": None}


# --- deciding ---------------------------------------------------------------------------------------------------


def test_deciding_follows_the_precedence_whatever_the_order() -> None:
    urgent = check_customer(POLICY, "i want to end my life", [])[0]
    legal = check_customer(POLICY, "my attorney", [])[0]
    block = check_customer(POLICY, CARD, [])[0]
    error = ai_error("timeout", role="secondary", attempts=1, status=None, latency_s=8.0, detail="")
    asks = check_customer(POLICY, "human agent", [])[0]
    negative = check_customer(POLICY, "stupid and pathetic", [])[0]
    [missing, low] = answer(missing_data=["email"], confidence=0.1)[::-1]
    latency = answer(latency_s=9.0)[0]
    ranked = [urgent, legal, block, error, asks, negative, missing, low]
    shuffler = random.Random(4)
    for _ in range(200):
        shuffled = [*ranked, latency]
        shuffler.shuffle(shuffled)
        assert deciding(shuffled) is urgent
    for index, signal in enumerate(ranked):
        rest = [*ranked[index:][::-1], latency]
        assert deciding(rest) is signal


def test_deciding_prefers_the_more_urgent_handoff_then_the_first() -> None:
    high = check_customer(POLICY, "lawsuit", [])[0]
    urgent = check_customer(POLICY, "suicide", [])[0]
    assert deciding([high, urgent]) is urgent
    other_high = dataclasses.replace(high, values={**high.values, "rule": "other"})
    assert deciding([other_high, high]) is other_high


def test_nothing_decides_without_a_reason() -> None:
    assert deciding([]) is None
    assert deciding(answer(latency_s=10.0)) is None


# --- redaction --------------------------------------------------------------------------------------------------


def test_redact_replaces_block_patterns_only() -> None:
    text = f"Card {CARD}, CVV: 123, my lawyer, order 12345"
    assert redact(text, POLICY) == f"Card {REDACTED}, {REDACTED}, my lawyer, order 12345"
    assert redact("4111-1111-1111-1111\u200b", POLICY) == REDACTED
    assert redact("nothing to hide", POLICY) == "nothing to hide"
    flag_only = make_policy(guardrails=(guardrail("cards", GuardrailAction.FLAG, patterns=(r"\d{16}",)),))
    assert redact("4111111111111111", flag_only) == "4111111111111111"


# --- compiled rules ---------------------------------------------------------------------------------------------


def test_policies_sharing_a_version_are_not_confused() -> None:
    first = make_policy(version="same")
    second = make_policy(version="same", guardrails=(guardrail("pets", GuardrailAction.FLAG, keywords=("cat",)),))
    assert kinds(check_customer(first, "a cat and a lawyer", [])) == [("guardrail", "legal_threat")]
    assert kinds(check_customer(second, "a cat and a lawyer", [])) == [("guardrail", "pets")]
    assert kinds(check_customer(first, "a cat and a lawyer", [])) == [("guardrail", "legal_threat")]


def test_the_compiled_rules_cache_is_bounded() -> None:
    for _ in range(3 * signals.CACHE_SIZE):
        check_customer(make_policy(), "hello", [])
    assert len(signals._CACHE) <= signals.CACHE_SIZE


def test_every_signal_is_json() -> None:
    found = [
        *check_customer(POLICY, f"useless and awful lawyer, operator! {CARD}", ["useless and awful lawyer operator"]),
        *check_ai_text(POLICY, "i guarantee"),
        *answer(confidence=0.1, latency_s=7.0, missing_data=["email"]),
        ai_error("busy", role="primary", attempts=0, status=None, latency_s=0.0, detail="over max_concurrent"),
    ]
    assert len({signal.kind for signal in found}) == 6
    for signal in found:
        assert json.loads(json.dumps(signal.event_data())) == signal.event_data()


def test_built_in_policy() -> None:
    built_in = load_policy(None)
    assert [rule.name for rule in built_in.guardrails] == [rule.name for rule in GUARDRAILS]
    found = check_customer(built_in, f"I will KILL myself, my lawyer has {CARD}. Useless and awful!", [])
    assert kinds(found) == [
        ("guardrail", "self_harm"),
        ("guardrail", "legal_threat"),
        ("guardrail", "payment_data"),
        ("frustration", "negative"),
    ]
    assert deciding(found) is found[0]
    assert found[0].priority == "urgent"
    assert redact(f"card {CARD}", built_in) == f"card {REDACTED}"
    assert kinds(check_customer(built_in, "can I talk to a human", [])) == [("frustration", "asks_human")]
    assert kinds(check_customer(built_in, "Where is my order?", ["where is my order"])) == [("frustration", "repeat")]
    assert check_customer(built_in, "Our lawyers said hello, thank you", ["hi"]) == []
    assert kinds(check_ai_text(built_in, "I guarantee a refund")) == [("guardrail", "ai_promises")]
    arguments: dict[str, Any] = {"latency_s": 5.5, "missing_data": ["email"]}
    assert kinds(check_answer(built_in, confidence=0.65, intent="refund_request", **arguments)) == [
        ("low_confidence", None),
        ("latency", None),
        ("missing_data", None),
    ]
    assert check_answer(built_in, confidence=0.65, intent=None, latency_s=5.0, missing_data=[]) == []
