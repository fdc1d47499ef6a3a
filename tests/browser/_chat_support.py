"""What the customer-side browser tests share: a small real AI behind the integration's webhook, a TCP proxy that
can cut the customer's connection like a network would, and a recorder of the chat socket's frames."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from playwright.async_api import Page, WebSocket

from tests.browser._support import TIMEOUT_MS

AI_REPLY = "We're open from 9:00 to 17:00, Monday to Friday."
AI_HANDOFF_REPLY = "Let me bring in a colleague from our team."
AI_WELCOME_BACK = "Welcome back! Anything else I can help with?"


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = TIMEOUT_MS / 1000) -> Any:
    """Poll a condition under a deadline (for state outside the page: the API, the proxy, the frame list)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Ai:
    """An AI answering the desk's turns: asked for a person, it escalates; otherwise it answers the hours."""

    url: str = ""
    turns: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") != "turn":
            return {"ok": True}  # an event delivery
        self.turns.append(body)
        text = str(body["message"]["text"]).lower()
        if "person" in text:
            bundle = {
                "reason": {"code": "user_request", "detail": "The customer asked for a person.", "confidence": 0.4},
                "priority": "normal",
                "skills": ["billing"],
                "summary": "The customer wants to talk to a person.",
            }
            return {"reply": AI_HANDOFF_REPLY, "confidence": 0.4, "escalate": bundle}
        if "back" in text:
            return {"reply": AI_WELCOME_BACK, "confidence": 0.9, "escalate": None}
        return {"reply": AI_REPLY, "confidence": 0.92, "escalate": None}


@contextmanager
def serve_ai() -> Iterator[Ai]:
    ai = Ai()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.dumps(ai.answer(json.loads(self.rfile.read(length)))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ai.url = f"http://127.0.0.1:{server.server_address[1]}/ai"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ai
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Proxy:
    """A TCP proxy in front of the desk: the customer's browser reaches the desk only through it, so the test can
    drop every connection at once (`drop`), refuse new ones (`refusing`), or stop passing the desk's answers on
    (`deaf`: what the browser sends still arrives, the acks it would get are lost)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self.deaf = False
        self.accepted = 0
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop(self) -> None:
        """Cut every open connection, as a network failure would (no close handshake)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer, False), self._pipe(upstream_reader, writer, True))
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool) -> None:
        with suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if downstream and self.deaf:
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


@asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@dataclass
class ChatFrames:
    """Every frame the page's chat sockets sent and received, decoded, in order."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() when the test saw each sent frame
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: int = 0

    def watch(self, page: Page) -> None:
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        if "/ws/chat" not in ws.url:
            return
        self.sockets += 1
        ws.on("framesent", self._sent)
        ws.on("framereceived", lambda payload: self.received.append(_decode(payload)))

    def _sent(self, payload: str | bytes) -> None:
        self.sent.append(_decode(payload))
        self.sent_at.append(time.monotonic())

    def sent_times(self, type: str) -> list[float]:
        return [at for frame, at in zip(self.sent, self.sent_at, strict=True) if frame.get("type") == type]

    def sent_messages(self) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame.get("type") == "message"]


def _decode(payload: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(payload)
    except ValueError:
        return {"type": "undecodable"}
    return frame if isinstance(frame, dict) else {"type": "undecodable"}
