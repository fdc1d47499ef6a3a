"""control.returned through a real server: the demo AI posts its resume message to Desk's API."""

from __future__ import annotations

import time
from typing import Any

from desk.demo_ai.handback import resume_client_id
from tests.demo_ai._support import TOKEN, WAIT_S, FakeDesk

AT = "2026-11-25T10:00:00+00:00"


def _returned(event_id: int, conversation_id: str = "conv-1", **outcome: Any) -> dict[str, Any]:
    outcome = {
        "resolution": "Refunded order 1234",
        "recommendation_feedback": "used",
        "note_for_ai": "Refunds take 5-7 business days to show up.",
        "tags": ["refund"],
        **outcome,
    }
    return {
        "id": str(event_id),
        "type": "control.returned",
        "at": AT,
        "conversation_id": conversation_id,
        "data": {
            "outcome": outcome,
            "note_for_ai": outcome["note_for_ai"],
            "messages": [{"seq": 5, "author": {"kind": "agent", "name": "Ada"}, "text": "Done!", "at": AT}],
        },
    }


def test_control_returned_posts_the_resume_message(fake_desk: FakeDesk) -> None:
    response = fake_desk.deliver(_returned(7))
    assert response.status_code == 200
    [posted] = fake_desk.wait_for_posts(1)
    assert posted.conversation_id == "conv-1"
    assert posted.authorization == f"Bearer {TOKEN}"
    assert posted.body["text"] == (
        "Thanks for your patience. I see my colleague has refunded order 1234. "
        "From their notes: Refunds take 5-7 business days to show up. "
        "Is there anything else I can help you with?"
    )
    assert posted.body["client_id"] == resume_client_id("7")


def test_redelivered_event_posts_once(fake_desk: FakeDesk) -> None:
    assert fake_desk.deliver(_returned(8)).json() == {"ok": True, "duplicate": False}
    fake_desk.wait_for_posts(1)
    assert fake_desk.deliver(_returned(8)).json() == {"ok": True, "duplicate": True}
    # A later event is posted after anything the duplicate could have caused.
    fake_desk.deliver(_returned(9, "conv-2"))
    posts = fake_desk.wait_for_posts(2)
    assert [p.conversation_id for p in posts] == ["conv-1", "conv-2"]
    assert fake_desk.attempts == 2


def test_transient_desk_failures_are_retried(fake_desk: FakeDesk) -> None:
    fake_desk.statuses = [503, 502]
    fake_desk.deliver(_returned(10))
    [posted] = fake_desk.wait_for_posts(1)
    assert fake_desk.attempts == 3
    assert posted.body["client_id"] == resume_client_id("10")


def test_refusal_is_not_retried_and_a_redelivery_is_still_a_duplicate(fake_desk: FakeDesk) -> None:
    fake_desk.statuses = [409]
    fake_desk.deliver(_returned(11))
    fake_desk.wait_for_attempts(1)
    assert fake_desk.deliver(_returned(11)).json()["duplicate"] is True
    fake_desk.deliver(_returned(12, "conv-2"))
    [posted] = fake_desk.wait_for_posts(1)
    assert posted.conversation_id == "conv-2"
    assert fake_desk.attempts == 2


def test_giving_up_lets_a_redelivery_try_again(fake_desk: FakeDesk) -> None:
    fake_desk.statuses = [503] * 4
    fake_desk.deliver(_returned(13))
    fake_desk.wait_for_attempts(4)
    # The task forgets the id just after its last attempt; until then a redelivery is still a duplicate.
    deadline = time.monotonic() + WAIT_S
    while fake_desk.deliver(_returned(13)).json()["duplicate"]:
        assert time.monotonic() < deadline, "the event id was never forgotten"
    [posted] = fake_desk.wait_for_posts(1)
    assert posted.body["client_id"] == resume_client_id("13")


def test_other_events_post_nothing(fake_desk: FakeDesk) -> None:
    for i, kind in enumerate(["handoff.created", "handoff.claimed", "conversation.resolved"]):
        response = fake_desk.deliver({"id": str(100 + i), "type": kind, "at": AT, "conversation_id": "c", "data": {}})
        assert response.json() == {"ok": True, "duplicate": False}
    fake_desk.deliver(_returned(14))
    fake_desk.wait_for_posts(1)
    assert fake_desk.attempts == 1


def test_turn_through_the_mounted_path(fake_desk: FakeDesk) -> None:
    message = {
        "seq": 1,
        "author": {"kind": "customer", "name": "Ada"},
        "text": "Can I talk to a human?",
        "at": AT,
    }
    response = fake_desk.deliver({"type": "turn", "conversation_id": "c", "message": message, "history": []})
    assert response.status_code == 200
    assert response.json()["escalate"]["reason"]["code"] == "user_request"
