"""Test support: real `desk serve` processes, the `desk` CLI, HTTP clients and socket readers.

Everything here goes through Desk's public interface (the console script, HTTP and WebSocket), so the tests
exercise what users run. Sockets and feeds are read with deadlines: a test waits for a condition, never for time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import psycopg
import pytest
import redis
from psycopg import sql
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

Json = dict[str, Any]

DESK_BIN = Path(sys.executable).with_name("desk")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_KEY = "test-secret"
PASSWORD = "correct horse battery staple"

SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 15
CLI_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 45
RECV_TIMEOUT_S = 10
FEED_TIMEOUT_S = 20
FEED_WAIT_S = 5

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


# --- services -------------------------------------------------------------------------------------------------


def service_unavailable(what: str, error: str) -> NoReturn:
    message = (
        f"!!! {what} IS NOT REACHABLE ({error}): tests that need it did NOT run. "
        "Start it (see .ci/run) to run the whole suite."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@functools.cache
def _postgres_error() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"{PG_ADMIN_URL}: {exc}"


@functools.cache
def _redis_error() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return f"{REDIS_URL}: {exc}"
    finally:
        client.close()


def require_postgres() -> None:
    error = _postgres_error()
    if error is not None:
        service_unavailable("PostgreSQL", error)


def require_redis() -> None:
    error = _redis_error()
    if error is not None:
        service_unavailable("Redis", error)


@contextlib.contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database created for the caller and dropped after."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'desk.db'}"
        try:
            yield url
        finally:
            stop_servers_on(url)
        return
    assert kind == "postgres", kind
    require_postgres()
    name = f"desk_t_{secrets.token_hex(8)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{PG_SERVER_URL}/{name}"
    try:
        yield url
    finally:
        stop_servers_on(url)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- server processes -----------------------------------------------------------------------------------------


@dataclass
class Server:
    database_url: str
    redis_url: str | None
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, max_lines: int = 300) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-max_lines:])

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=SERVER_STOP_TIMEOUT_S)


RUNNING: list[Server] = []


def stop_servers_on(database_url: str) -> None:
    for server in [s for s in RUNNING if s.database_url == database_url]:
        server.stop()


# Under pytest-xdist each worker hands out ports from its own range below the kernel's ephemeral ports
# (/proc/sys/net/ipv4/ip_local_port_range starts at 32768), so a port one worker found free cannot be handed to
# another worker's server before the first one binds it; ports the kernel picks (bind to 0) never land there.
PORTS_PER_WORKER = 2000
FIRST_WORKER_PORT = 20000
_worker_ports: Iterator[int] | None = None


def _ports_of_this_worker() -> Iterator[int] | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    start = FIRST_WORKER_PORT + int(worker[2:]) * PORTS_PER_WORKER
    return itertools.cycle(range(start, start + PORTS_PER_WORKER))


def free_port() -> int:
    global _worker_ports
    if _worker_ports is None:
        _worker_ports = _ports_of_this_worker()
    ports = _worker_ports
    for _ in range(PORTS_PER_WORKER if ports is not None else 0):
        assert ports is not None
        port = next(ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (still in use by an earlier server of this worker, or by something else)
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        found: int = sock.getsockname()[1]
        return found


def desk_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DESK_")}
    env.update(DESK_DATABASE_URL=database_url, DESK_SECRET_KEY=SECRET_KEY, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def start_server(
    database_url: str, *, directory: Path, redis_url: str | None = None, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    extra = {"DESK_HOST": "127.0.0.1", "DESK_PORT": str(port), **(env or {})}
    if redis_url is not None:
        extra["DESK_REDIS_URL"] = redis_url
    log_path = directory / f"desk-serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(DESK_BIN), "serve"],
            env=desk_env(database_url, **extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    server = Server(database_url, redis_url, port, log_path, process)
    RUNNING.append(server)
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise RuntimeError(f"desk serve exited with {code} before it was ready:\n{server.log_tail()}")
        try:
            response = httpx.get(f"{server.url}/healthz", timeout=2)
        except httpx.TransportError as exc:
            last_error = repr(exc)
        else:
            if response.status_code == 200 and response.json().get("status") == "ok":
                return
            last_error = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.05)  # polling a readiness condition under a deadline
    raise RuntimeError(f"desk serve not ready after {SERVER_START_TIMEOUT_S}s ({last_error}):\n{server.log_tail()}")


class ServerPool:
    """Starts `desk serve` processes on demand and stops them all at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: list[Server] = []

    def __call__(self, database_url: str, *, redis: bool = False, env: dict[str, str] | None = None) -> Server:
        redis_url = None
        if redis:
            require_redis()
            redis_url = REDIS_URL
        server = start_server(database_url, directory=self.directory, redis_url=redis_url, env=env)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


# --- the command line -----------------------------------------------------------------------------------------


def desk_cli(
    database_url: str, *args: str, stdin: str = "", check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(DESK_BIN), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=desk_env(database_url),
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"desk {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def create_user(
    database_url: str,
    *,
    email: str,
    name: str,
    role: str,
    password: str = PASSWORD,
    skills: tuple[str, ...] = (),
    capacity: int | None = None,
) -> Json:
    args = ["user", "create", "--email", email, "--name", name, "--role", role]
    if skills:
        args += ["--skills", ",".join(skills)]
    if capacity is not None:
        args += ["--capacity", str(capacity)]
    result = desk_cli(database_url, *args, stdin=password + "\n")
    user = json.loads(result.stdout)
    assert isinstance(user, dict)
    assert user["email"] == email
    assert user["role"] == role
    assert HEX_ID.match(user["id"]), user
    return user


def create_integration(database_url: str, *, name: str, webhook_url: str | None = None) -> Json:
    args = ["integration", "create", "--name", name]
    if webhook_url is not None:
        args += ["--webhook-url", webhook_url]
    created = json.loads(desk_cli(database_url, *args).stdout)
    assert isinstance(created, dict)
    assert set(created) >= {"id", "token", "webhook_secret"}, created
    return created


# --- HTTP -----------------------------------------------------------------------------------------------------


def check_response(response: httpx.Response) -> None:
    """Every answer in the suite: never a 5xx, and API errors always in the contract's shape."""
    request = response.request
    assert response.status_code < 500, (
        f"{request.method} {request.url} answered {response.status_code}: {response.text[:3000]}"
    )
    if response.status_code >= 400 and request.url.path.startswith("/api/"):
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(
                f"{request.method} {request.url} answered {response.status_code} without a JSON body: "
                f"{response.text[:500]!r}"
            ) from None
        assert isinstance(body, dict), body
        assert isinstance(body.get("error"), dict), body
        error = body["error"]
        assert SNAKE_CASE.match(str(error.get("code"))), body
        assert isinstance(error.get("message"), str), body
        assert error["message"], body
        assert "Traceback" not in response.text, response.text
        if error["code"] == "validation_error":
            assert isinstance(error.get("fields"), dict), body
            assert error["fields"], body


async def _check_async_response(response: httpx.Response) -> None:
    await response.aread()
    check_response(response)


def _sync_check(response: httpx.Response) -> None:
    response.read()
    check_response(response)


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def api(server: Server, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        headers=bearer(token),
        timeout=HTTP_TIMEOUT_S,
        event_hooks={"response": [_check_async_response]},
    )


def sync_api(server: Server, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers=bearer(token),
        timeout=HTTP_TIMEOUT_S,
        event_hooks={"response": [_sync_check]},
    )


def error_of(response: httpx.Response, status: int, code: str) -> Json:
    assert response.status_code == status, (
        f"expected {status} {code}, got {response.status_code}: {response.text[:2000]}"
    )
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert isinstance(error, dict)
    return error


def ok(response: httpx.Response, *statuses: int) -> Json:
    expected = statuses or (200,)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url.path}: expected {expected}, "
        f"got {response.status_code}: {response.text[:2000]}"
    )
    body = response.json()
    assert isinstance(body, dict), body
    return body


def assert_timestamp(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without a UTC offset: {value}"
    return parsed


def assignee_id(conversation: Json) -> str | None:
    assignee = conversation.get("assignee")
    if isinstance(assignee, dict):
        value = assignee.get("id")
        return None if value is None else str(value)
    return None if assignee is None else str(assignee)


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def mentions(text: str) -> Callable[[Json], bool]:
    """A predicate: the JSON value contains `text` somewhere."""
    return lambda value: text in dump(value)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar in a JSON value with its dotted path, for assertions that do not depend on nesting."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


# --- staff, integrations, a desk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    id: str
    email: str
    name: str
    role: str
    password: str
    token: str


@dataclass(frozen=True)
class Integration:
    id: str
    token: str
    webhook_secret: str


def login(server: Server, email: str, password: str) -> Json:
    with sync_api(server) as client:
        return ok(client.post("/api/v1/auth/token", json={"email": email, "password": password}))


@dataclass
class Desk:
    """One running desk: its server plus helpers to enrol staff and integrations through the CLI."""

    server: Server
    _counter: int = field(default=0)

    @property
    def database_url(self) -> str:
        return self.server.database_url

    def integration(self, name: str | None = None, webhook_url: str | None = None) -> Integration:
        created = create_integration(
            self.database_url, name=name or f"ai-{secrets.token_hex(3)}", webhook_url=webhook_url
        )
        return Integration(created["id"], created["token"], created["webhook_secret"])

    def staff(
        self,
        role: str = "agent",
        *,
        name: str | None = None,
        skills: tuple[str, ...] = ("billing",),
        capacity: int | None = None,
    ) -> Staff:
        suffix = secrets.token_hex(4)
        email = f"{role}-{suffix}@example.com"
        name = name or f"{role.title()} {suffix}"
        user = create_user(self.database_url, email=email, name=name, role=role, skills=skills, capacity=capacity)
        session = login(self.server, email, PASSWORD)
        assert session["user"]["id"] == user["id"], session
        return Staff(user["id"], email, name, role, PASSWORD, session["token"])

    def staff_many(self, count: int, role: str = "agent", *, capacity: int | None = None) -> list[Staff]:
        # Each CLI call is a Python start-up; run a few side by side to keep the suite quick.
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda _: self.staff(role, capacity=capacity), range(count)))

    def api(self, token: str | None = None) -> httpx.AsyncClient:
        return api(self.server, token)

    def chat(self, customer_token: str) -> contextlib.AbstractAsyncContextManager[ChatSocket]:
        return open_chat(self.server, customer_token)

    def staff_socket(self, token: str) -> contextlib.AbstractAsyncContextManager[StaffSocket]:
        return open_staff(self.server, token)


# --- request bodies and flows ---------------------------------------------------------------------------------


def new_customer(name: str = "Ada Lovelace") -> Json:
    suffix = secrets.token_hex(4)
    return {
        "external_id": f"crm-{suffix}",
        "name": name,
        "email": f"ada-{suffix}@example.com",
        "locale": "en",
        "attributes": {"plan": "pro"},
    }


def context_bundle(*, conversation_id: str | None = None, **overrides: Any) -> Json:
    bundle: Json = {
        "customer": new_customer(),
        "channel": "web",
        "reason": {"code": "low_confidence", "detail": "Refund outside the policy window", "confidence": 0.31},
        "priority": "high",
        "skills": ["billing"],
        "transcript": [
            {"role": "customer", "text": "I was charged twice for November.", "at": "2026-11-25T10:00:00Z"},
            {"role": "ai", "text": "I can see two charges. Let me check.", "at": "2026-11-25T10:00:05Z"},
            {"role": "customer", "text": "I want a refund for the second one.", "at": "2026-11-25T10:00:20Z"},
        ],
        "classification": {"intent": "refund_request", "sentiment": "negative", "topics": ["billing"]},
        "summary": "Customer was charged twice in November and asks for a refund of the duplicate charge.",
        "recommended_actions": [
            {"kind": "reply", "title": "Apologise and refund", "body": "Sorry! I've refunded it.", "confidence": 0.6},
            {"kind": "action", "title": "Refund duplicate charge", "body": "refund(charge_id)", "confidence": 0.5},
            {"kind": "link", "title": "Refund policy", "body": "https://example.com/refunds", "confidence": 0.4},
        ],
        "metadata": {"source": "tests"},
    }
    if conversation_id is not None:
        bundle["conversation_id"] = conversation_id
    bundle.update(overrides)
    return bundle


def outcome(**overrides: Any) -> Json:
    value: Json = {
        "resolution": "Refunded the duplicate charge",
        "recommendation_feedback": "edited",
        "note_for_ai": "Refund done; confirm the customer sees it within 5 days.",
        "tags": ["refund", "duplicate-charge"],
    }
    value.update(overrides)
    return {"outcome": value}


async def create_conversation(ai: httpx.AsyncClient, customer: Json | None = None) -> Json:
    body = {"customer": customer or new_customer(), "channel": "web", "metadata": {"source": "tests"}}
    return ok(await ai.post("/api/v1/conversations", json=body), 201)


async def escalate(ai: httpx.AsyncClient, bundle: Json, key: str | None = None) -> Json:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return ok(await ai.post("/api/v1/escalations", json=bundle, headers=headers), 201)


async def read(client: httpx.AsyncClient, conversation_id: str) -> Json:
    return ok(await client.get(f"/api/v1/conversations/{conversation_id}"))


async def claim(client: httpx.AsyncClient, conversation_id: str) -> Json:
    return ok(await client.post(f"/api/v1/conversations/{conversation_id}/claim"))


async def post_message(client: httpx.AsyncClient, conversation_id: str, text: str, **extra: Any) -> Json:
    body = {"text": text, "client_id": uuid.uuid4().hex, **extra}
    return ok(await client.post(f"/api/v1/conversations/{conversation_id}/messages", json=body), 200, 201)


def message_seqs(conversation: Json) -> list[int]:
    return [int(message["seq"]) for message in conversation["messages"]]


def assert_gapless(conversation: Json) -> None:
    seqs = message_seqs(conversation)
    assert seqs == list(range(1, len(seqs) + 1)), f"message seqs are not 1..n: {seqs}"


# --- the integration feed -------------------------------------------------------------------------------------


class Feed:
    """An integration's long-polled event feed, read from the start; keeps every event it has seen."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.cursor = "0"
        self.events: list[Json] = []

    async def poll(self, wait: float = 0) -> list[Json]:
        response = await self.client.get("/api/v1/events", params={"after": self.cursor, "wait": wait})
        body = ok(response)
        events = body["events"]
        assert isinstance(events, list), body
        last = int(self.cursor)
        for event in events:
            assert set(event) >= {"id", "type", "at", "conversation_id", "data"}, event
            assert int(event["id"]) > last, f"feed went backwards or repeated: {event['id']} after {last}"
            last = int(event["id"])
        self.cursor = str(body["cursor"])
        self.events.extend(events)
        return events

    def find(self, type: str, conversation_id: str | None, where: Callable[[Json], bool] | None) -> Json | None:
        for event in self.events:
            if event["type"] != type:
                continue
            if conversation_id is not None and event["conversation_id"] != conversation_id:
                continue
            if where is None or where(event):
                return event
        return None

    async def wait_for(
        self,
        type: str,
        conversation_id: str | None = None,
        where: Callable[[Json], bool] | None = None,
        timeout: float = FEED_TIMEOUT_S,
    ) -> Json:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(type, conversation_id, where)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e["id"], e["type"], e["conversation_id"]) for e in self.events[-30:]]
                raise AssertionError(f"no {type} for {conversation_id} in the feed within {timeout}s; saw {seen}")
            await self.poll(wait=max(1, min(FEED_WAIT_S, int(remaining))))


# --- sockets --------------------------------------------------------------------------------------------------


class Socket:
    """A JSON WebSocket that remembers every frame, so tests can wait for one and later check what else came."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Json] = []
        self._taken: set[int] = set()

    async def send(self, frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = RECV_TIMEOUT_S) -> Json:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        assert isinstance(frame, dict), f"frame is not a JSON object: {raw!r}"
        self.frames.append(frame)
        return frame

    def mark(self) -> int:
        return len(self.frames)

    def since(self, mark: int) -> list[Json]:
        return self.frames[mark:]

    async def until(self, predicate: Callable[[Json], bool], what: str, timeout: float = RECV_TIMEOUT_S) -> Json:
        """The first frame not yet taken that matches, waiting for new frames up to the deadline."""
        for index, frame in enumerate(self.frames):
            if index not in self._taken and predicate(frame):
                self._taken.add(index)
                return frame
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no frame with {what} within {timeout}s; last frames: {self.frames[-15:]}")
            try:
                frame = await self.recv(remaining)
            except TimeoutError:
                continue
            if predicate(frame):
                self._taken.add(len(self.frames) - 1)
                return frame


class ChatSocket(Socket):
    async def status(self, status: str, timeout: float = RECV_TIMEOUT_S) -> Json:
        return await self.until(
            lambda f: f.get("type") == "status" and f.get("status") == status, f"status {status}", timeout
        )

    async def message(self, text: str, timeout: float = RECV_TIMEOUT_S) -> Json:
        return await self.until(
            lambda f: f.get("type") == "message" and f.get("text") == text, f"message {text!r}", timeout
        )

    async def ack(self, client_id: str, timeout: float = RECV_TIMEOUT_S) -> Json:
        return await self.until(
            lambda f: f.get("type") == "ack" and f.get("client_id") == client_id, f"ack {client_id}", timeout
        )

    async def say(self, text: str, client_id: str | None = None) -> Json:
        client_id = client_id or str(uuid.uuid4())
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return await self.ack(client_id)

    def messages(self, frames: list[Json] | None = None) -> list[Json]:
        return [f for f in (self.frames if frames is None else frames) if f.get("type") == "message"]


class StaffSocket(Socket):
    async def event(
        self,
        type: str,
        conversation_id: str | None = None,
        where: Callable[[Json], bool] | None = None,
        timeout: float = RECV_TIMEOUT_S,
    ) -> Json:
        def matches(frame: Json) -> bool:
            if frame.get("type") != "event":
                return False
            event = frame["event"]
            return (
                event.get("type") == type
                and (conversation_id is None or event.get("conversation_id") == conversation_id)
                and (where is None or where(event))
            )

        frame = await self.until(matches, f"event {type} for {conversation_id}", timeout)
        event = frame["event"]
        assert isinstance(event, dict)
        assert set(event) >= {"id", "type", "at", "conversation_id", "data"}, event
        return event

    def events(self, frames: list[Json] | None = None) -> list[Json]:
        return [f["event"] for f in (self.frames if frames is None else frames) if f.get("type") == "event"]


def _connect(url: str, **options: Any) -> connect:
    return connect(url, open_timeout=RECV_TIMEOUT_S, close_timeout=5, proxy=None, **options)


@contextlib.asynccontextmanager
async def open_chat(server: Server, customer_token: str) -> AsyncIterator[ChatSocket]:
    async with _connect(f"{server.ws_url}/ws/chat?token={customer_token}") as ws:
        yield ChatSocket(ws)


@contextlib.asynccontextmanager
async def open_staff(server: Server, token: str) -> AsyncIterator[StaffSocket]:
    async with _connect(f"{server.ws_url}/ws/staff?token={token}") as ws:
        yield StaffSocket(ws)


async def assert_socket_refused(url: str) -> None:
    """The server refuses the handshake, closes at once, or answers only with an error frame."""
    try:
        async with _connect(url) as ws:
            try:
                raw = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)
            except ConnectionClosed:
                return
            frame = json.loads(raw)
            assert frame.get("type") == "error", f"{url} was accepted; first frame: {frame}"
            return
    except InvalidStatus as refused:
        status = refused.response.status_code
    assert status in (401, 403, 404), f"{url} refused with {status}"


async def close_code_after(ws: ClientConnection, timeout: float = RECV_TIMEOUT_S) -> int | None:
    """Read until the server closes; the close code it sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            await asyncio.wait_for(ws.recv(), deadline - loop.time())
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code
    raise AssertionError(f"the server did not close the socket within {timeout}s")
