from __future__ import annotations

import pytest

from desk.demo_ai.brain import CONFIDENCE_THRESHOLD, Line, respond, resume_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What are your opening hours?", "Monday to Friday"),
        ("Are you open on Sunday?", "closed on Sundays"),
        ("How long does shipping take?", "3-5 business days"),
        ("I forgot my password", "Forgot password?"),
        ("Where is my order?", "Account > Orders"),
        ("How do I return an item?", "within 30 days"),
        ("hello", "demo assistant"),
    ],
)
def test_answers_known_questions_confidently(text: str, expected: str) -> None:
    reply = respond(text)
    assert reply.escalation is None
    assert expected in reply.text
    assert CONFIDENCE_THRESHOLD <= reply.confidence <= 0.95


def test_more_evidence_means_more_confidence() -> None:
    weak = respond("when do you open")
    strong = respond("when do you open on saturday, what are your opening hours")
    assert strong.escalation is None
    assert strong.confidence > weak.confidence


def test_small_talk_does_not_hide_a_question() -> None:
    assert "Account > Orders" in respond("hi, where is my order?").text


def test_single_keyword_is_low_confidence() -> None:
    reply = respond("hours?")
    assert reply.escalation is not None
    assert reply.confidence < CONFIDENCE_THRESHOLD
    assert reply.escalation.reason.code == "low_confidence"
    assert reply.escalation.reason.confidence == reply.confidence
    assert "under the 0.50 threshold" in reply.escalation.reason.detail


def test_ambiguous_message_is_low_confidence() -> None:
    reply = respond("Where is my order? And I want a refund.")
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "low_confidence"
    assert reply.escalation.skills == ("billing", "general")


def test_unknown_question_escalates_with_zero_confidence() -> None:
    reply = respond("Can you recommend a good lasagne recipe?")
    assert reply.confidence == 0.0
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "low_confidence"
    assert reply.escalation.classification.intent == "unknown"
    assert "colleague" in reply.text


def test_recognised_but_unanswerable_goes_to_billing() -> None:
    reply = respond("I was charged twice for my order, I need a refund")
    assert reply.escalation is not None
    bundle = reply.escalation.bundle()
    assert bundle["reason"]["code"] == "low_confidence"
    assert bundle["skills"] == ["billing", "general"]
    assert bundle["classification"]["topics"] == ["billing", "orders"]


@pytest.mark.parametrize(
    "text",
    ["Can I talk to a human?", "I want to speak to a real person", "agent", "Please connect me to someone"],
)
def test_asking_for_a_person_escalates(text: str) -> None:
    reply = respond(text)
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "user_request"
    assert reply.escalation.classification.intent == "human_request"
    assert reply.escalation.priority == "normal"


def test_asking_for_a_person_keeps_the_topic() -> None:
    reply = respond("I need to talk to someone about my password, I'm locked out")
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "user_request"
    assert reply.escalation.classification.intent == "password_reset"
    assert reply.escalation.skills == ("technical",)


@pytest.mark.parametrize(
    ("text", "priority"),
    [("This is ridiculous", "high"), ("refund now!!", "high"), ("This is RIDICULOUS!! Useless!!", "urgent")],
)
def test_anger_escalates(text: str, priority: str) -> None:
    reply = respond(text)
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "user_frustration"
    assert reply.escalation.classification.sentiment == "negative"
    assert reply.escalation.priority == priority
    assert reply.escalation.recommended_actions[0].title == "Apologise and take ownership"


def test_refund_anger_needs_billing() -> None:
    reply = respond("refund now!!")
    assert reply.escalation is not None
    assert reply.escalation.skills == ("billing",)
    assert reply.escalation.classification.intent == "refund_request"
    assert "strong language" in reply.escalation.reason.detail


def test_asking_the_same_thing_again_and_again_escalates() -> None:
    question = "Where is my order 1234?"
    answer = respond(question).text
    history = [Line("customer", question), Line("ai", answer)]
    assert respond(question, history).escalation is None
    history += [Line("customer", question), Line("ai", answer)]
    reply = respond(question, history)
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "user_frustration"
    assert "repeating themselves" in reply.escalation.reason.detail


def test_escalation_bundle_is_complete() -> None:
    history = [
        Line("customer", "Hi"),
        Line("ai", "Hi! How can I help?"),
        Line("customer", "Where is my order 1234?"),
        Line("ai", "You can track your order under Account > Orders."),
    ]
    reply = respond("It still says nothing. I want to talk to a person.", history)
    assert reply.escalation is not None
    bundle = reply.escalation.bundle()
    assert set(bundle) == {
        "reason",
        "priority",
        "skills",
        "summary",
        "classification",
        "recommended_actions",
    }
    assert set(bundle["reason"]) == {"code", "detail", "confidence"}
    assert bundle["classification"]["intent"] == "order_tracking"
    assert bundle["classification"]["topics"] == ["orders"]
    assert bundle["skills"] == ["general"]
    summary = bundle["summary"]
    assert "3 messages about order tracking" in summary
    assert "\u201cHi\u201d" in summary
    assert "I want to talk to a person" in summary
    assert "replied 2 times" in summary
    assert "\n" not in summary
    actions = bundle["recommended_actions"]
    assert 2 <= len(actions) <= 3
    for action in actions:
        assert action["kind"] in {"reply", "action", "link"}
        assert action["title"]
        assert action["body"]
        assert 0.0 <= action["confidence"] <= 1.0


def test_summary_quotes_are_trimmed() -> None:
    reply = respond("lasagne " * 100)
    assert reply.escalation is not None
    assert len(reply.escalation.summary) < 400
    assert "\u2026" in reply.escalation.summary


def test_resume_text_uses_the_resolution_and_the_note() -> None:
    text = resume_text("Refunds take 5-7 business days to show.", {"resolution": "Refunded order 1234."})
    assert text.startswith("Thanks for your patience. I see my colleague has refunded order 1234.")
    assert "From their notes: Refunds take 5-7 business days to show." in text
    assert text.endswith("Is there anything else I can help you with?")


def test_resume_text_with_a_noun_phrase_resolution() -> None:
    text = resume_text(None, {"resolution": "New tracking number sent by email"})
    assert "I see my colleague has taken care of this: New tracking number sent by email." in text
    assert "notes" not in text


def test_resume_text_without_an_outcome() -> None:
    text = resume_text("", {})
    assert text == (
        "Thanks for your patience. My colleague has handed the conversation back to me. "
        "Is there anything else I can help you with?"
    )


def test_angry_request_for_a_person_gets_an_apology_first() -> None:
    reply = respond("This is ridiculous!! I want a human")
    assert reply.escalation is not None
    assert reply.escalation.reason.code == "user_request"
    assert reply.escalation.priority == "high"
    assert reply.escalation.recommended_actions[0].title == "Apologise and take ownership"
    assert "Sentiment: negative (strong language, repeated exclamation marks)." in reply.escalation.summary
