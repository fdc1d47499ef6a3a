from __future__ import annotations

import json
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from desk.demo_ai import build_demo_ai
from desk.demo_ai.signatures import sign
from tests.demo_ai._support import SECRET, TOKEN, FakeDesk

AT = "2026-11-25T10:00:00+00:00"


def _message(seq: int, kind: str, text: str) -> dict[str, Any]:
    return {"seq": seq, "author": {"kind": kind, "name": kind.title()}, "text": text, "at": AT}


def _turn(text: str, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    history = history or []
    seq = len(history) + 1
    return {
        "type": "turn",
        "conversation_id": "c0ffee",
        "message": _message(seq, "customer", text),
        "history": history,
    }


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_demo_ai("http://127.0.0.1:9", TOKEN, SECRET))


def _post(
    client: TestClient,
    body: bytes | dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Desk-Timestamp": stamp, "Desk-Signature": signature or sign(secret, stamp, raw)}
    return client.post("/webhook", content=raw, headers=headers)


def test_signed_turn_gets_an_answer(client: TestClient) -> None:
    response = _post(client, _turn("What are your opening hours?"))
    assert response.status_code == 200
    body = response.json()
    assert "Monday to Friday" in body["reply"]
    assert 0.5 <= body["confidence"] <= 1.0
    assert body["escalate"] is None


def test_turn_escalates_with_a_context_bundle(client: TestClient) -> None:
    history = [
        _message(1, "customer", "Where is my order?"),
        _message(2, "ai", "You can track your order under Account > Orders."),
    ]
    response = _post(client, _turn("This is ridiculous, I want a human!!", history))
    assert response.status_code == 200
    body = response.json()
    assert "colleague" in body["reply"]
    escalate = body["escalate"]
    assert escalate["reason"]["code"] == "user_request"
    assert escalate["priority"] == "high"
    assert escalate["classification"] == {
        "intent": "order_tracking",
        "sentiment": "negative",
        "topics": ["orders"],
    }
    assert "2 messages about order tracking" in escalate["summary"]
    assert 2 <= len(escalate["recommended_actions"]) <= 3
    assert "transcript" not in escalate


def test_history_that_includes_the_current_message_is_not_a_repeat(client: TestClient) -> None:
    question = "Where is my order 1234?"
    history = [
        _message(1, "customer", question),
        _message(2, "ai", "You can track your order under Account > Orders."),
        _message(3, "customer", question),
    ]
    body = {"type": "turn", "conversation_id": "c", "message": history[-1], "history": history}
    assert _post(client, body).json()["escalate"] is None
    del body["message"]["seq"]  # type: ignore[attr-defined]
    assert _post(client, body).json()["escalate"] is None


def test_history_may_use_roles(client: TestClient) -> None:
    body = _turn("Where is my order 1234?")
    body["history"] = [{"role": "customer", "text": "Where is my order 1234?"}] * 2
    escalate = _post(client, body).json()["escalate"]
    assert escalate["reason"]["code"] == "user_frustration"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Desk-Timestamp": "{now}"},
        {"Desk-Signature": "v1=00"},
        {"Desk-Timestamp": "{now}", "Desk-Signature": "v1=00"},
        {"Desk-Timestamp": "{now}", "Desk-Signature": "{good_other_secret}"},
        {"Desk-Timestamp": "yesterday", "Desk-Signature": "{good}"},
    ],
)
def test_unsigned_or_badly_signed_requests_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    raw = json.dumps(_turn("What are your opening hours?")).encode()
    now = str(int(time.time()))
    values = {"now": now, "good": sign(SECRET, now, raw), "good_other_secret": sign("other", now, raw)}
    response = client.post("/webhook", content=raw, headers={k: v.format(**values) for k, v in headers.items()})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("age_s", [301, -301, 3600])
def test_stale_signatures_are_refused(client: TestClient, age_s: int) -> None:
    response = _post(client, _turn("What are your opening hours?"), timestamp=int(time.time()) - age_s)
    assert response.status_code == 401


def test_signature_over_another_body_is_refused(client: TestClient) -> None:
    stamp = str(int(time.time()))
    signature = sign(SECRET, stamp, json.dumps(_turn("hello")).encode())
    response = _post(client, _turn("hi!"), timestamp=int(stamp), signature=signature)
    assert response.status_code == 401


def test_any_of_several_signatures_may_match(client: TestClient) -> None:
    raw = json.dumps(_turn("hello")).encode()
    stamp = str(int(time.time()))
    signature = f"{sign('old-secret', stamp, raw)}, {sign(SECRET, stamp, raw)}"
    response = _post(client, raw, timestamp=int(stamp), signature=signature)
    assert response.status_code == 200


def test_malformed_json_is_400(client: TestClient) -> None:
    response = _post(client, b'{"type": "turn",')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert _post(client, b"\xff\xfe").status_code == 400


def test_turn_of_the_wrong_shape_is_422(client: TestClient) -> None:
    response = _post(client, {"type": "turn", "message": {"text": 3}, "history": {}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"conversation_id", "message.text", "history"}
    assert _post(client, b"[1, 2]").status_code == 422


def test_events_are_acknowledged_and_deduplicated(client: TestClient) -> None:
    event = {"id": "41", "type": "handoff.claimed", "at": AT, "conversation_id": "c", "data": {}}
    first = _post(client, event)
    assert first.status_code == 200
    assert first.json() == {"ok": True, "duplicate": False}
    assert _post(client, event).json() == {"ok": True, "duplicate": True}
    del event["id"]
    assert _post(client, event).status_code == 422


def test_fake_desk_rejects_unsigned_deliveries_too(fake_desk: FakeDesk) -> None:
    response = fake_desk.deliver({"id": "1", "type": "handoff.created", "data": {}}, secret="wrong")
    assert response.status_code == 401


def test_oversized_body_is_413(client: TestClient) -> None:
    body = _turn("hello")
    body["padding"] = "x" * (1024 * 1024)
    response = _post(client, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
