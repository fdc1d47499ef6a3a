"""The demo AI's modes, over HTTP: what the primary and the backup answer in each, switching, and what it shows in
`desk demo` (the desk's fallback ladder taking over)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from desk.demo_ai import build_demo_ai
from desk.demo_ai.modes import EXPLANATIONS, MODES, Modes
from desk.demo_ai.signatures import sign
from tests._support import Server, desk_cli, login, ok, open_chat
from tests.demo_ai._support import SECRET, TOKEN, WAIT_S
from tests.test_demo import DEMO_PASSWORD, running_demo

SLOW_S = 1.0
PRIMARY = "/demo-ai/webhook"
BACKUP = "/demo-ai/backup/webhook"
BACKUP_PREFIX = "(backup assistant) "
TURN = {
    "type": "turn",
    "conversation_id": "c0ffee",
    "message": {"seq": 1, "author": {"kind": "customer"}, "text": "What are your opening hours?"},
    "history": [],
}
EVENT = {"id": "7", "type": "handoff.created", "conversation_id": "c0ffee", "data": {}}


@dataclass
class DemoAI:
    url: str
    modes: Modes
    http: httpx.Client

    def post(self, path: str, body: dict[str, Any], *, secret: str = SECRET, timeout: float = WAIT_S) -> httpx.Response:
        raw = json.dumps(body).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Desk-Timestamp": stamp,
            "Desk-Signature": sign(secret, stamp, raw),
        }
        return self.http.post(self.url + path, content=raw, headers=headers, timeout=timeout)

    def switch(self, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"{self.url}/demo-ai/mode", **kwargs)


@contextmanager
def serve_demo_ai(modes: Modes, *, slow_s: float = SLOW_S) -> Iterator[DemoAI]:
    """The demo AI alone under a real uvicorn server, mounted at /demo-ai as `desk demo` mounts it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = Starlette(routes=[Mount("/demo-ai", app=build_demo_ai(url, TOKEN, SECRET, modes=modes, slow_s=slow_s))])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo AI did not start")
            time.sleep(0.01)  # waiting for a condition under a deadline
        with httpx.Client(timeout=WAIT_S) as http:
            yield DemoAI(url, modes, http)
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()
        assert not thread.is_alive(), "the demo AI did not stop"


@pytest.fixture
def demo_ai() -> Iterator[DemoAI]:
    with serve_demo_ai(Modes()) as served:
        yield served


def _timed(demo_ai: DemoAI, path: str, body: dict[str, Any] = TURN) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = demo_ai.post(path, body)
    return response, time.monotonic() - began


# --- each mode's answers ----------------------------------------------------------------------------------------


def test_healthy_both_answer_at_once_and_the_backup_says_it_is_the_backup(demo_ai: DemoAI) -> None:
    primary, primary_s = _timed(demo_ai, PRIMARY)
    backup, backup_s = _timed(demo_ai, BACKUP)
    assert primary.status_code == backup.status_code == 200
    assert primary_s < SLOW_S
    assert backup_s < SLOW_S
    assert "Monday to Friday" in primary.json()["reply"]
    assert not primary.json()["reply"].startswith(BACKUP_PREFIX)
    assert backup.json()["reply"] == BACKUP_PREFIX + primary.json()["reply"]
    assert backup.json()["confidence"] == primary.json()["confidence"]


def test_slow_primary_takes_slow_s_and_the_backup_answers_at_once() -> None:
    with serve_demo_ai(Modes("slow")) as demo_ai:
        primary, primary_s = _timed(demo_ai, PRIMARY)
        backup, backup_s = _timed(demo_ai, BACKUP)
        event, event_s = _timed(demo_ai, PRIMARY, EVENT)
    assert primary.status_code == 200
    assert "Monday to Friday" in primary.json()["reply"]
    assert primary_s >= SLOW_S
    assert backup.status_code == 200
    assert backup.json()["reply"].startswith(BACKUP_PREFIX)
    assert backup_s < SLOW_S
    assert event.json() == {"ok": True, "duplicate": False}
    assert event_s < SLOW_S


def test_a_slow_turn_ends_when_the_caller_hangs_up() -> None:
    # A turn that waited its whole minute would keep the server from stopping: serve_demo_ai asserts it stopped.
    with serve_demo_ai(Modes("slow"), slow_s=60) as demo_ai, pytest.raises(httpx.ReadTimeout):
        demo_ai.post(PRIMARY, TURN, timeout=0.3)


def test_flaky_primary_fails_about_half_the_time_as_seeded() -> None:
    seeded = Modes("flaky", seed=4)
    expected = [seeded.outcome("primary") for _ in range(30)]
    assert 8 <= expected.count("unavailable") <= 22
    for _ in range(2):  # the same seed, the same answers
        with serve_demo_ai(Modes("flaky", seed=4)) as demo_ai:
            statuses = [demo_ai.post(PRIMARY, TURN).status_code for _ in range(30)]
            backup = [demo_ai.post(BACKUP, TURN).status_code for _ in range(5)]
            event = demo_ai.post(PRIMARY, EVENT)
        assert statuses == [503 if outcome == "unavailable" else 200 for outcome in expected]
        assert backup == [200] * 5
        assert event.status_code == 200


def test_down_both_answer_503_at_once_but_events_are_still_acknowledged() -> None:
    with serve_demo_ai(Modes("down")) as demo_ai:
        answers = [_timed(demo_ai, path) for path in (PRIMARY, BACKUP)]
        event = demo_ai.post(PRIMARY, EVENT)
    for response, seconds in answers:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert seconds < SLOW_S
    assert event.json() == {"ok": True, "duplicate": False}


# --- switching ------------------------------------------------------------------------------------------------


def test_mode_switches_by_json(demo_ai: DemoAI) -> None:
    assert ok(demo_ai.http.get(f"{demo_ai.url}/demo-ai/mode")) == {"mode": "healthy"}
    assert ok(demo_ai.switch(json={"mode": "down"})) == {"mode": "down"}
    assert ok(demo_ai.http.get(f"{demo_ai.url}/demo-ai/mode")) == {"mode": "down"}
    assert demo_ai.modes.mode == "down"
    assert demo_ai.post(PRIMARY, TURN).status_code == 503
    assert ok(demo_ai.switch(json={"mode": "healthy"})) == {"mode": "healthy"}
    assert demo_ai.post(PRIMARY, TURN).status_code == 200


def test_mode_switches_by_form_and_goes_back_to_the_page(demo_ai: DemoAI) -> None:
    response = demo_ai.switch(data={"mode": "flaky"}, headers={"Origin": demo_ai.url})
    assert response.status_code == 303
    assert response.headers["location"] == "/demo-ai/"
    assert demo_ai.modes.mode == "flaky"
    page = demo_ai.http.get(demo_ai.url + response.headers["location"])
    assert "Now <strong>flaky</strong>" in page.text


def test_page_shows_the_mode_and_one_button_per_mode_without_inline_script_or_style(demo_ai: DemoAI) -> None:
    page = demo_ai.http.get(f"{demo_ai.url}/demo-ai/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "Now <strong>healthy</strong>" in html
    assert html.count('action="/demo-ai/mode"') == len(MODES)
    for mode in MODES:
        assert f'name="mode" value="{mode}"' in html
        assert EXPLANATIONS[mode].replace('"', "&quot;").replace("'", "&#x27;") in html
    for forbidden in ("<script", "<style", "style=", "onclick"):
        assert forbidden not in html.lower()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"mode": "sideways"}},
        {"json": {"mode": 3}},
        {"json": {}},
        {"json": ["slow"]},
        {"data": {"mode": "HEALTHY"}},
        {"data": {"mood": "slow"}},
    ],
)
def test_unknown_mode_is_422_and_changes_nothing(demo_ai: DemoAI, kwargs: dict[str, Any]) -> None:
    response = demo_ai.switch(**kwargs)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    assert error["fields"]
    assert demo_ai.modes.mode == "healthy"


def test_bad_switch_requests_are_refused(demo_ai: DemoAI) -> None:
    invalid = demo_ai.switch(content=b'{"mode": ', headers={"Content-Type": "application/json"})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_json"
    too_large = demo_ai.switch(content=b"x" * (1024 * 1024 + 1))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "body_too_large"
    elsewhere = demo_ai.switch(data={"mode": "down"}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"]["code"] == "forbidden"
    opaque = demo_ai.switch(data={"mode": "down"}, headers={"Origin": "null"})
    assert opaque.status_code == 403
    assert demo_ai.modes.mode == "healthy"


def test_unknown_starting_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sideways"):
        Modes("sideways")
    modes = Modes()
    with pytest.raises(ValueError, match="HEALTHY"):
        modes.switch("HEALTHY")
    assert modes.mode == "healthy"


# --- signatures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PRIMARY, BACKUP])
@pytest.mark.parametrize("mode", ["healthy", "down"])
def test_both_webhooks_require_a_signature(path: str, mode: str) -> None:
    with serve_demo_ai(Modes(mode)) as demo_ai:
        unsigned = demo_ai.http.post(demo_ai.url + path, json=TURN)
        other = demo_ai.post(path, TURN, secret="another-secret")
    for response in (unsigned, other):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_backup_answers_turns_only(demo_ai: DemoAI) -> None:
    response = demo_ai.post(BACKUP, EVENT)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"type": "turn"}


def test_oversized_turn_to_the_backup_is_413(demo_ai: DemoAI) -> None:
    response = demo_ai.post(BACKUP, {**TURN, "padding": "x" * (1024 * 1024)})
    assert response.status_code == 413


# --- in `desk demo` -------------------------------------------------------------------------------------------


async def _new_chat(demo: Server) -> str:
    async with httpx.AsyncClient(base_url=demo.url, timeout=WAIT_S) as anonymous:
        opened = await anonymous.get("/demo/chat")
    assert opened.status_code == 303
    return opened.headers["location"].rsplit("/", 1)[1]


def _ai_said(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message" and frame["author"]["kind"] == "ai"


async def test_desk_demo_down_falls_back_to_a_flow_and_to_a_person(tmp_path: Path) -> None:
    with running_demo(tmp_path, "--ai", "down") as demo:
        assert f"{demo.url}/demo-ai/   (now down" in demo.log_path.read_text()
        staff_token = login(demo, "ada@demo.desk", DEMO_PASSWORD)["token"]
        async with open_chat(demo, await _new_chat(demo)) as customer:
            await customer.send({"type": "resume", "after_seq": 0})
            await customer.say("Where is my order?")
            intro = await customer.until(_ai_said, "the desk taking over")
            assert "assistant is having trouble" in intro["text"]
            prompt = await customer.until(_ai_said, "the order flow's first question")
            assert "order number" in prompt["text"]

        async with open_chat(demo, await _new_chat(demo)) as customer:
            await customer.send({"type": "resume", "after_seq": 0})
            await customer.say("Can I pay with a gift card?")
            await customer.status("queued")
            said = await customer.until(_ai_said, "the desk saying a person comes")
            assert "assistant is having trouble" in said["text"]
        headers = {"Authorization": f"Bearer {staff_token}"}
        async with httpx.AsyncClient(base_url=demo.url, headers=headers, timeout=WAIT_S) as staff:
            queue = ok(await staff.get("/api/v1/queue"))["items"]
            assert [item["reason"]["code"] for item in queue] == ["system_error"]

            switched = await staff.post("/demo-ai/mode", data={"mode": "healthy"})
            assert switched.status_code == 303
            assert switched.headers["location"] == "/demo-ai/"
            assert ok(await staff.get("/demo-ai/mode")) == {"mode": "healthy"}


async def test_desk_demo_slow_is_answered_by_the_backup(tmp_path: Path) -> None:
    with running_demo(tmp_path, "--ai", "slow", env={"DESK_TURN_TIMEOUT_S": "1"}) as demo:
        async with open_chat(demo, await _new_chat(demo)) as customer:
            await customer.send({"type": "resume", "after_seq": 0})
            await customer.say("What are your opening hours?")
            answer = await customer.until(_ai_said, "the backup's answer")
    assert answer["text"].startswith(BACKUP_PREFIX)
    assert "Monday to Friday" in answer["text"]


def test_desk_demo_refuses_an_unknown_mode(tmp_path: Path) -> None:
    result = desk_cli(f"sqlite:///{tmp_path / 'demo.db'}", "demo", "--ai", "sideways", check=False)
    assert result.returncode == 2
    assert "healthy, slow, flaky, down" in result.stderr
    assert not (tmp_path / "demo.db").exists()
