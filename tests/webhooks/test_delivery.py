"""Webhooks (CONTRACT.md section 6), received by a small real HTTP server in the test: signed event deliveries,
retried until a 2xx, in order per conversation (a receiver that was down, busy or failing); and the AI turn,
answered by the test as an AI would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlmodel import select

from desk.store.db import Database
from desk.store.models import DeadLetter
from desk.store.models import Integration as IntegrationRow
from tests._support import (
    Desk,
    Json,
    ServerPool,
    Staff,
    claim,
    context_bundle,
    create_conversation,
    escalate,
    free_port,
    ok,
    outcome,
    post_message,
    read,
)

WEBHOOK_TIMEOUT_S = 30


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str = "/hook"
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Json:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass(frozen=True)
class Answer:
    """A planned answer to a delivery: its status, headers, and reason phrase (which a receiver may set at will)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class Receiver:
    """Records every POST; answers turns with `reply`, and fails the first `fail_first` deliveries with a 503.
    `plan` answers the next deliveries of an event (conversation id, type) with what it lists, then 200."""

    url: str = ""
    reply: str = "Hello from the webhook AI"
    fail_first: int = 0
    turn_answer: tuple[int, bytes] | None = None  # a broken AI: this status and raw body for every turn
    turn_delay_s: float = 0.0
    plan: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: queue.Queue[Received] = field(default_factory=queue.Queue)
    failed: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def planned(self, received: Received) -> Answer | None:
        body = received.json
        with self.lock:
            answers = self.plan.get((str(body.get("conversation_id")), str(body.get("type"))))
            return answers.pop(0) if answers else None

    def answer(self, received: Received) -> tuple[int, Json]:
        body = received.json
        if body.get("type") == "turn":
            return 200, {"reply": self.reply, "confidence": 0.93, "escalate": None}
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                self.failed.append(received)
                return 503, {"error": "try again"}
        return 200, {"ok": True}

    async def next(self, timeout: float = WEBHOOK_TIMEOUT_S) -> Received:
        return await asyncio.to_thread(self.requests.get, True, timeout)


@contextmanager
def serving(state: Receiver, port: int = 0) -> Iterator[Receiver]:
    """`state` answering on 127.0.0.1:`port` (0: any free port) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received = Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length), self.path)
            headers: dict[str, str] = {}
            reason: str | None = None
            if state.turn_answer is not None and received.json.get("type") == "turn":
                time.sleep(state.turn_delay_s)  # a slow AI (this handler runs in its own thread)
                status, payload = state.turn_answer
            elif (planned := state.planned(received)) is not None:
                status, headers, reason, payload = planned.status, planned.headers, planned.reason, b"{}"
            else:
                status, body = state.answer(received)
                payload = json.dumps(body).encode()
            state.requests.put(received)
            self.send_response(status, reason)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as state:
        yield state


def assert_signed(received: Received, secret: str) -> None:
    timestamp = received.headers["desk-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300, timestamp
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["desk-signature"], f"v1={expected}"), received.headers


async def _collect(receiver: Receiver, until: Any, timeout: float = WEBHOOK_TIMEOUT_S) -> list[Received]:
    seen: list[Received] = []
    deadline = time.monotonic() + timeout
    while not any(until(r) for r in seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the webhook did not receive what was expected; got {[r.json for r in seen]}"
        try:
            seen.append(await receiver.next(remaining))
        except queue.Empty:
            continue
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_turns_and_signed_deliveries(desk: Desk, receiver: Receiver) -> None:
    integration = desk.integration(webhook_url=receiver.url)
    agent = desk.staff("agent")
    receiver.fail_first = 2
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        created = await create_conversation(ai)
        cid = created["id"]
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("What are your opening hours?")
            frame = await customer.message(receiver.reply, timeout=WEBHOOK_TIMEOUT_S)
            assert frame["author"]["kind"] == "ai"

        def is_delivery_of(received: Received, type: str) -> bool:
            body = received.json
            return body.get("type") == type and body.get("conversation_id") == cid

        seen = await _collect(receiver, lambda r: is_delivery_of(r, "message.created") and r not in receiver.failed)

        # The turn: signed, with the message and the history.
        [turn] = [r for r in seen if r.json.get("type") == "turn"]
        assert_signed(turn, integration.webhook_secret)
        assert turn.json["conversation_id"] == cid
        assert "What are your opening hours?" in json.dumps(turn.json["message"])
        assert isinstance(turn.json["history"], list)

        # Deliveries: signed, the event as the body, its id in the header; failures retried with the same id.
        deliveries = [r for r in seen if r.json.get("type") != "turn"]
        for delivery in deliveries:
            assert_signed(delivery, integration.webhook_secret)
            assert delivery.headers["desk-event-id"] == str(delivery.json["id"])
            assert set(delivery.json) >= {"id", "type", "at", "conversation_id", "data"}
        ids = [d.headers["desk-event-id"] for d in deliveries]
        assert ids[0] == ids[1] == ids[2], f"the failed delivery was not retried first: {ids}"

        # Later events follow, in order.
        conversation = await read(ai, cid)
        assert conversation["messages"][-1]["text"] == receiver.reply
        await escalate(ai, context_bundle(conversation_id=cid))
        await claim(staff, cid)
        await post_message(staff, cid, "NOTE for staff eyes only", internal=True)
        ok_return = await staff.post(f"/api/v1/conversations/{cid}/return", json=outcome(note_for_ai="carry on"))
        assert ok_return.status_code == 200, ok_return.text
        more = await _collect(receiver, lambda r: is_delivery_of(r, "control.returned"))
        types = [r.json["type"] for r in more if r.json.get("conversation_id") == cid and r.json["type"] != "turn"]
        assert types.index("handoff.created") < types.index("handoff.claimed") < types.index("control.returned")
        event_ids = [int(r.headers["desk-event-id"]) for r in deliveries + more if r.json.get("type") != "turn"]
        assert event_ids == sorted(event_ids), event_ids
        assert all("NOTE for staff eyes only" not in r.body.decode() for r in seen + more)
        returned = next(r for r in more if is_delivery_of(r, "control.returned"))
        assert "carry on" in json.dumps(returned.json["data"])


@pytest.mark.parametrize(
    ("answer", "delay_s", "detail"),
    [
        ((500, b'{"error": "boom"}'), 0.0, "answered 500"),
        ((200, b"this is not json"), 0.0, "malformed"),
        ((200, b'{"reply": "too late", "confidence": 0.9}'), 3.0, "unreachable"),
    ],
    ids=["5xx", "malformed", "timeout"],
)
async def test_a_failing_ai_turn_goes_to_a_human(
    database_url: str, server: ServerPool, receiver: Receiver, answer: tuple[int, bytes], delay_s: float, detail: str
) -> None:
    desk = Desk(server(database_url, env={"DESK_TURN_TIMEOUT_S": "1"}))
    receiver.turn_answer, receiver.turn_delay_s = answer, delay_s
    integration = desk.integration(webhook_url=receiver.url)
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        created = await create_conversation(ai)
        async with desk.chat(created["customer_token"]) as customer:
            await customer.say("Where is my parcel?")
            apology = await customer.until(
                lambda f: f.get("type") == "message" and f["author"]["kind"] == "ai", "the desk's apology"
            )
            assert "person" in apology["text"]
            await customer.status("queued")
        conversation = await read(staff, created["id"])
        handoff = conversation["handoff"]
        assert handoff["reason"]["code"] == "system_error"
        assert detail in handoff["reason"]["detail"]
        assert handoff["priority"] == "high"
        assert handoff["transcript"][0]["text"] == "Where is my parcel?"
        assert "too late" not in [m["text"] for m in conversation["messages"]]


# --- retries: a receiver that is down, busy or failing ---------------------------------------------------------------


def is_delivery_of(received: Received, conversation_id: str, type: str) -> bool:
    body = received.json
    return body.get("conversation_id") == conversation_id and body.get("type") == type


async def hand_over_and_back(ai: httpx.AsyncClient, staff: httpx.AsyncClient, conversation_id: str) -> None:
    """Three events for the integration, in this order: handoff.created, handoff.claimed, control.returned."""
    await escalate(ai, context_bundle(conversation_id=conversation_id))
    await claim(staff, conversation_id)
    ok(await staff.post(f"/api/v1/conversations/{conversation_id}/return", json=outcome()))


def first_arrivals(seen: list[Received]) -> dict[int, Received]:
    """Deliveries deduplicated by Desk-Event-Id as a receiver does, in order of first arrival."""
    unique: dict[int, Received] = {}
    for received in seen:
        if received.json.get("type") == "turn":
            continue
        event_id = int(received.headers["desk-event-id"])
        assert received.json["id"] == event_id, received.json
        first = unique.setdefault(event_id, received)
        assert first.body == received.body, "a retry sent a different body under the same Desk-Event-Id"
    return unique


async def _wait_for_failed_attempts(database_url: str, integration_id: str, renewals: int = 3) -> None:
    """Until the deliverer has re-taken its lease `renewals` times without delivering anything. A refused connection
    leaves no other trace, and each retry starts by renewing the lease; the first renewal may be the idle one."""
    db = Database(database_url)
    seen: set[object] = set()
    deadline = time.monotonic() + WEBHOOK_TIMEOUT_S
    try:
        while len(seen) <= renewals:
            with db.read() as session:
                row = session.get(IntegrationRow, integration_id)
            assert row is not None
            assert row.delivered_event_id == 0, "delivered to a port where nothing listens"
            if row.delivery_lease_until is not None:
                seen.add(row.delivery_lease_until)
            assert time.monotonic() < deadline, f"the deliverer did not retry: leases {sorted(map(str, seen))}"
            await asyncio.sleep(0.05)  # polling a condition under a deadline
    finally:
        db.dispose()


async def test_a_receiver_that_was_down_gets_every_event_once_in_order(module_desk: Desk) -> None:
    desk = module_desk
    port = free_port()  # nothing listens there yet: every delivery is a refused connection
    integration = desk.integration(webhook_url=f"http://127.0.0.1:{port}/hook")
    agent = desk.staff("agent")
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        conversation_ids = [(await create_conversation(ai))["id"] for _ in range(2)]
        for conversation_id in conversation_ids:
            await hand_over_and_back(ai, staff, conversation_id)
    await _wait_for_failed_attempts(desk.database_url, integration.id)
    with serving(Receiver(), port) as receiver:
        seen = await _collect(receiver, lambda r: is_delivery_of(r, conversation_ids[-1], "control.returned"))
    for received in seen:
        assert_signed(received, integration.webhook_secret)
    unique = first_arrivals(seen)
    assert list(unique) == sorted(unique), list(unique)
    for conversation_id in conversation_ids:
        types = [r.json["type"] for r in unique.values() if r.json["conversation_id"] == conversation_id]
        assert types == ["handoff.created", "handoff.claimed", "control.returned"], types


@pytest.mark.parametrize(
    "answers",
    [[Answer(429, {"Retry-After": "1"})], [Answer(500), Answer(503), Answer(408)]],
    ids=["429-retry-after", "5xx-and-408"],
)
async def test_busy_and_failing_receivers_are_retried(module_desk: Desk, answers: list[Answer]) -> None:
    desk = module_desk
    agent: Staff = desk.staff("agent")
    with serving(Receiver()) as receiver:
        integration = desk.integration(webhook_url=receiver.url)
        async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
            conversation_id = (await create_conversation(ai))["id"]
            receiver.plan[(conversation_id, "handoff.created")] = list(answers)
            await hand_over_and_back(ai, staff, conversation_id)
            seen = await _collect(receiver, lambda r: is_delivery_of(r, conversation_id, "control.returned"))
    tries = [r for r in seen if is_delivery_of(r, conversation_id, "handoff.created")]
    assert len(tries) == len(answers) + 1, [r.headers["desk-event-id"] for r in tries]
    assert len({r.headers["desk-event-id"] for r in tries}) == 1
    for received in tries:
        assert_signed(received, integration.webhook_secret)
    if answers[0].headers.get("Retry-After") == "1":
        # The backoff after a first failure is under 0.5 s: a second later is the receiver's Retry-After.
        assert tries[1].at - tries[0].at >= 0.95, tries[1].at - tries[0].at
    types = [r.json["type"] for r in first_arrivals(seen).values()]
    assert types == ["handoff.created", "handoff.claimed", "control.returned"], types
    db = Database(desk.database_url)
    try:
        with db.read() as session:
            letters = session.exec(select(DeadLetter).where(DeadLetter.integration_id == integration.id)).all()
    finally:
        db.dispose()
    assert letters == [], "a retried answer was dead-lettered"
