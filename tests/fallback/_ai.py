"""A programmable AI provider for the fallback tests: a real HTTP server on 127.0.0.1, in a thread.

It answers the desk's turns (CONTRACT.md section 6) the way the test says: a reply with a confidence, a failure
status, a hang, a malformed body, or no listener at all (connections refused). Event deliveries to the same URL
(bodies whose "type" is not "turn") are answered 200 and kept apart. Every request's Desk-Signature is checked
with the test's own HMAC-SHA256 once `secret` is known (integrations are created after the server, since they
need its URL); a bad or missing signature is recorded in `signature_failures`, never raised in the server thread.

    with running_ai() as primary, running_ai() as secondary:
        integration = ai_integration(desk, primary, secondary)
        primary.hang(5)
        secondary.fail(503)
        ...
        await eventually(lambda: primary.turn_count == 2, "two attempts on the primary")
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests._support import Desk, Integration, Json, desk_cli

WAIT_TIMEOUT_S = 20.0
POLL_S = 0.05
SIGNATURE_SKEW_S = 300
HANG_FOREVER_S = 3600.0

Answer = tuple[int, bytes, float]  # status, body, seconds to wait before answering
Behaviour = Callable[[Json], Answer]  # called with each turn's body


@dataclass(frozen=True)
class Received:
    """One request as it arrived (recorded before any planned delay, so a hung attempt still counts)."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Json:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def is_turn(self) -> bool:
        return self.json.get("type") == "turn"

    @property
    def text(self) -> str | None:
        """A turn's customer message text."""
        message = self.json.get("message")
        return message.get("text") if isinstance(message, dict) else None


def reply_body(
    text: str | None,
    confidence: float | None = 0.9,
    *,
    intent: str | None = None,
    missing_data: list[str] | None = None,
    escalate: Json | None = None,
) -> bytes:
    body: Json = {"reply": text, "confidence": confidence, "escalate": escalate}
    if intent is not None:
        body["intent"] = intent
    if missing_data is not None:
        body["missing_data"] = missing_data
    return json.dumps(body).encode()


class AIServer:
    """See the module docstring. Thread-safe: the server's handler threads and the test share it under a lock."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.signature_failures: list[str] = []
        self.event_status = 200
        self._answer: Behaviour = _replying(reply_body("Hello from the test AI", 0.9))
        self._lock = threading.Lock()
        self._released = threading.Event()  # set on stop: hung answers end at once
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- where it listens -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.port, "the AI server was never started"
        return f"http://127.0.0.1:{self.port}/turn"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> AIServer:
        assert self._server is None, "already listening"
        self._released.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"ai-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._released.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def down(self) -> None:
        """Stop listening: the desk's connections are refused until `up()`, on the same port."""
        self.stop()

    def up(self) -> None:
        self.start()

    def __enter__(self) -> AIServer:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what it answers --------------------------------------------------------------------------------------

    @property
    def answer(self) -> Behaviour:
        return self._answer

    @answer.setter
    def answer(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._answer = behaviour

    def reply(
        self,
        text: str | None,
        confidence: float | None = 0.9,
        *,
        intent: str | None = None,
        missing_data: list[str] | None = None,
        escalate: Json | None = None,
    ) -> None:
        body = reply_body(text, confidence, intent=intent, missing_data=missing_data, escalate=escalate)
        self.answer = _replying(body)

    def fail(self, status: int, body: bytes = b'{"error": "failing on purpose"}') -> None:
        self.answer = lambda turn: (status, body, 0.0)

    def hang(self, seconds: float = HANG_FOREVER_S) -> None:
        """Answer nothing for `seconds` (then a normal reply, far too late for any sane time limit)."""
        late = reply_body("This answer came too late", 0.9)
        self.answer = lambda turn: (200, late, seconds)

    def malformed(self) -> None:
        self.answer = lambda turn: (200, b"this is not json {", 0.0)

    # --- what it received -------------------------------------------------------------------------------------

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    @property
    def request_count(self) -> int:
        """Every request: turns and event deliveries."""
        return len(self.snapshot())

    def turns(self, conversation_id: str | None = None) -> list[Json]:
        return [r.json for r in self.snapshot() if r.is_turn and _about(r.json, conversation_id)]

    def turn_count(self, conversation_id: str | None = None) -> int:
        return len(self.turns(conversation_id))

    def turn_texts(self, conversation_id: str | None = None) -> list[str | None]:
        return [r.text for r in self.snapshot() if r.is_turn and _about(r.json, conversation_id)]

    def events(self, conversation_id: str | None = None, type: str | None = None) -> list[Json]:
        """Event deliveries (bodies without "type": "turn"), in arrival order."""
        return [
            r.json
            for r in self.snapshot()
            if not r.is_turn and _about(r.json, conversation_id) and (type is None or r.json.get("type") == type)
        ]

    async def wait_turns(self, count: int, conversation_id: str | None = None, timeout: float = WAIT_TIMEOUT_S) -> None:
        await eventually(
            lambda: self.turn_count(conversation_id) >= count,
            f"{count} turn(s) for {conversation_id} at {self.url} (got {self.turn_texts(conversation_id)})",
            timeout,
        )

    async def wait_event(
        self,
        type: str,
        conversation_id: str | None = None,
        where: Callable[[Json], bool] | None = None,
        timeout: float = WAIT_TIMEOUT_S,
    ) -> Json:
        def found() -> Json | None:
            return next((e for e in self.events(conversation_id, type) if where is None or where(e)), None)

        await eventually(lambda: found() is not None, f"a {type} delivery for {conversation_id}", timeout)
        event = found()
        assert event is not None
        return event

    def assert_signed(self) -> None:
        assert not self.signature_failures, self.signature_failures

    # --- the handler's side -----------------------------------------------------------------------------------

    def _take(self, received: Received) -> Answer:
        with self._lock:
            self.received.append(received)
            failure = _signature_problem(self.secret, received)
            if failure is not None:
                self.signature_failures.append(failure)
            behaviour = self._answer
            event_status = self.event_status
        if not received.is_turn:
            return event_status, b'{"ok": true}', 0.0
        return behaviour(received.json)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._released.wait(seconds)


def _replying(body: bytes) -> Behaviour:
    return lambda turn: (200, body, 0.0)


def _about(body: Json, conversation_id: str | None) -> bool:
    return conversation_id is None or body.get("conversation_id") == conversation_id


def _signature_problem(secret: str | None, received: Received) -> str | None:
    if secret is None:
        return f"{received.path}: a request arrived before the test told the server its secret"
    timestamp = received.headers.get("desk-timestamp", "")
    given = received.headers.get("desk-signature", "")
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        return f"bad Desk-Timestamp {timestamp!r}"
    if skew > SIGNATURE_SKEW_S:
        return f"Desk-Timestamp {timestamp} is {skew:.0f} s off"
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, f"v1={expected}"):
        return f"bad Desk-Signature {given!r} on {received.body[:120]!r}"
    return None


def _handler(ai: AIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload, delay_s = ai._take(Received(self.path, headers, self.rfile.read(length)))
            ai._pause(delay_s)  # a slow AI: this handler runs in its own thread
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the desk gave up waiting, as it should

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- starting it, and integrations that use it ---------------------------------------------------------------


@contextmanager
def running_ai(secret: str | None = None) -> Iterator[AIServer]:
    with AIServer(secret) as ai:
        yield ai


@pytest.fixture
def ai_server() -> Iterator[AIServer]:
    with running_ai() as ai:
        yield ai


def ai_integration(desk: Desk, primary: AIServer | None, secondary: AIServer | None = None) -> Integration:
    """An integration whose webhook_url is `primary` and fallback_webhook_url `secondary`; both are told its
    webhook secret, so they can check the signatures."""
    args = ["integration", "create", "--name", f"ai-{secrets.token_hex(3)}"]
    if primary is not None:
        args += ["--webhook-url", primary.url]
    if secondary is not None:
        args += ["--fallback-webhook-url", secondary.url]
    created = json.loads(desk_cli(desk.database_url, *args).stdout)
    assert set(created) >= {"id", "token", "webhook_secret"}, created
    for server in (primary, secondary):
        if server is not None:
            server.secret = created["webhook_secret"]
    return Integration(created["id"], created["token"], created["webhook_secret"])


# --- waiting ------------------------------------------------------------------------------------------------


async def eventually(condition: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT_S) -> Any:
    """Poll `condition` until it is truthy (returned), failing with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(POLL_S)  # polling a condition under a deadline


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT_S) -> Any:
    """`eventually` for synchronous code."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(POLL_S)  # polling a condition under a deadline
