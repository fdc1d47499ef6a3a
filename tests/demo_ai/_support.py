"""A real uvicorn server standing in for Desk: the demo AI mounted at /demo-ai, beside a fake message API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from desk.demo_ai import build_demo_ai
from desk.demo_ai.signatures import sign

TOKEN = "dski_test-token"
SECRET = "whsec-test-secret"
WAIT_S = 10.0


@dataclass
class Posted:
    conversation_id: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class FakeDesk:
    """Records what the demo AI posts; answers with `statuses` in turn, then 201."""

    base_url: str
    statuses: list[int] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)
    attempts: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def record(self, posted: Posted) -> int:
        with self._changed:
            self.attempts += 1
            status = self.statuses.pop(0) if self.statuses else 201
            if status < 300:
                self.posted.append(posted)
            self._changed.notify_all()
            return status

    def wait_for_posts(self, count: int) -> list[Posted]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.posted) >= count, timeout=WAIT_S):
                raise AssertionError(f"expected {count} posts, got {self.posted}")
            return list(self.posted)

    def wait_for_attempts(self, count: int) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.attempts >= count, timeout=WAIT_S):
                raise AssertionError(f"expected {count} attempts, got {self.attempts}")

    def deliver(self, body: dict[str, Any], *, secret: str = SECRET) -> httpx.Response:
        raw = json.dumps(body).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Desk-Timestamp": timestamp,
            "Desk-Signature": sign(secret, timestamp, raw),
        }
        if "id" in body:
            headers["Desk-Event-Id"] = str(body["id"])
        return httpx.post(f"{self.base_url}/demo-ai/webhook", content=raw, headers=headers, timeout=WAIT_S)


@contextmanager
def serve_fake_desk() -> Iterator[FakeDesk]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    desk = FakeDesk(base_url)

    async def messages(request: Request) -> JSONResponse:
        posted = Posted(
            conversation_id=request.path_params["id"],
            authorization=request.headers.get("authorization"),
            body=await request.json(),
        )
        status = desk.record(posted)
        if status == 409:
            return JSONResponse({"error": {"code": "not_in_control", "message": "human"}}, status_code=409)
        return JSONResponse({"seq": len(desk.posted)}, status_code=status)

    demo_ai = build_demo_ai(base_url, TOKEN, SECRET, retry_delays_s=(0.05, 0.05, 0.05))
    app = Starlette(
        routes=[
            Route("/api/v1/conversations/{id}/messages", messages, methods=["POST"]),
            Mount("/demo-ai", app=demo_ai),
        ]
    )
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        yield desk
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()
