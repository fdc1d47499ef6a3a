"""`desk demo` is a real loop: the demo AI answers, escalates with a context bundle, and resumes after hand-back,
talking to Desk only over HTTP (the turn webhook, event deliveries and the JSON API)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests._support import (
    DESK_BIN,
    SERVER_START_TIMEOUT_S,
    Server,
    claim,
    desk_env,
    free_port,
    login,
    ok,
    open_chat,
    post_message,
    read,
)

DEMO_PASSWORD = "demo-password"


@contextmanager
def running_demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`desk demo ARGS` on a fresh SQLite database, once its banner is out."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    port = free_port()
    log_path = tmp_path / "demo.log"
    environment = desk_env(url, DESK_PORT=str(port), DESK_HOST="127.0.0.1", **(env or {}))
    environment.pop("DESK_SECRET_KEY")  # as a new user runs it: the secret is generated
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(DESK_BIN), "demo", *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )
    server = Server(url, None, port, log_path, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while "Stop with Ctrl+C" not in log_path.read_text():
            assert process.poll() is None, server.log_tail()
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)  # waiting for the banner under a deadline
        yield server
    finally:
        server.stop()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Server]:
    with running_demo(tmp_path) as server:
        yield server


def test_banner_prints_urls_and_logins(demo: Server) -> None:
    banner = demo.log_path.read_text()
    assert f"{demo.url}/login" in banner
    assert f"{demo.url}/demo/chat" in banner
    assert f"{demo.url}/demo-ai/   (now healthy" in banner
    for email in ("ada@demo.desk", "sam@demo.desk"):
        assert email in banner
    assert DEMO_PASSWORD in banner


async def test_demo_ai_answers_escalates_and_resumes_after_hand_back(demo: Server) -> None:
    async with httpx.AsyncClient(base_url=demo.url, timeout=30) as anonymous:
        opened = await anonymous.get("/demo/chat")
        assert opened.status_code == 303
        token = opened.headers["location"].rsplit("/", 1)[1]
    staff_token = login(demo, "ada@demo.desk", DEMO_PASSWORD)["token"]

    async with (
        open_chat(demo, token) as customer,
        httpx.AsyncClient(base_url=demo.url, headers={"Authorization": f"Bearer {staff_token}"}, timeout=30) as staff,
    ):
        await customer.send({"type": "resume", "after_seq": 0})
        await customer.say("What are your opening hours?")
        answer = await customer.until(
            lambda f: f.get("type") == "message" and f["author"]["kind"] == "ai", "the AI's answer"
        )
        assert "open" in answer["text"].lower()

        await customer.say("I want to talk to a person")
        await customer.status("queued")
        queue = ok(await staff.get("/api/v1/queue"))["items"]
        assert len(queue) == 1
        item = queue[0]
        assert item["reason"]["code"] == "user_request"
        cid = item["conversation_id"]
        bundle = (await read(staff, cid))["handoff"]
        assert bundle["summary"]
        assert bundle["classification"]["intent"]
        assert 2 <= len(bundle["recommended_actions"]) <= 3
        assert [t["role"] for t in bundle["transcript"]][:2] == ["customer", "ai"]

        await claim(staff, cid)
        await customer.status("assigned")
        await post_message(staff, cid, "Hi, Ada here. I have refunded your order.")
        await customer.message("Hi, Ada here. I have refunded your order.")
        outcome = {
            "resolution": "refunded order 1234",
            "recommendation_feedback": "used",
            "note_for_ai": "Refund issued for order 1234; it arrives within 5 days.",
            "tags": ["refund"],
        }
        ok(await staff.post(f"/api/v1/conversations/{cid}/return", json={"outcome": outcome}))
        await customer.status("bot")
        resumed = await customer.until(
            lambda f: f.get("type") == "message" and f["author"]["kind"] == "ai" and "1234" in f["text"],
            "the AI resuming with the agent's note",
        )
        assert "arrives within 5 days" in resumed["text"]

        entries = ok(await staff.get("/api/v1/learning-log"))["items"]
        assert [e["note_for_ai"] for e in entries] == [outcome["note_for_ai"]]
        assert entries[0]["recommendation_feedback"] == "used"
