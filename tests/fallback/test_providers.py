"""Tier 1 (desk/fallback/providers.py): AI turns POSTed to small real HTTP servers that answer well, fail, hang,
trickle or are not there; with retries, backoff, breakers, caps, failover and deadlines. And the breaker rows and
alerts that `desk.actions.providers.record_breaker` keeps on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from desk.actions.providers import list_providers, record_breaker
from desk.domain.policy import AIPolicy, BreakerPolicy, ProviderPolicy
from desk.errors import ValidationFailed
from desk.fallback.providers import Provider, Providers
from desk.store.db import Database
from desk.store.models import AuditEntry, Event
from tests._support import desk_cli, free_port

SECRET = "whsec_test"
BODY = json.dumps({"type": "turn", "conversation_id": "c1", "message": {"text": "hi"}, "history": []}).encode()
REPLY = {"reply": "Hello!", "confidence": 0.9, "escalate": None}
HOLD_S = 10.0  # the longest a held or hanging request waits for the test to release it
TIMING_SLACK_S = 0.1

ANSWERS: dict[str, tuple[int, bytes]] = {
    "ok": (200, json.dumps(REPLY).encode()),
    "accepted": (202, b""),
    "malformed": (200, b"{not json"),
    "bad_shape": (200, json.dumps({"reply": "x", "confidence": 7}).encode()),
    **{str(status): (status, b'{"error": "no"}') for status in (400, 404, 408, 429, 500, 503)},
}


@dataclass
class AIServer:
    """A provider per path: `/ok`, `/503`, `/hang`, ... answer as their name says; `modes` can change a path's
    behaviour while the test runs. `hold` waits for `release` and then answers 200, `hold_503` 503."""

    base: str = ""
    modes: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _, _ in self.received if p == f"/{path}")


@pytest.fixture
def ai() -> Iterator[AIServer]:
    state = AIServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                mode = state.modes.get(self.path, self.path.strip("/"))
            with contextlib.suppress(OSError):  # the client gave up first, as it should
                self._answer(mode)

        def _answer(self, mode: str) -> None:
            if mode == "hang":
                state.release.wait(HOLD_S)
                return
            if mode in ("hold", "hold_503"):
                state.release.wait(HOLD_S)
                mode = "ok" if mode == "hold" else "503"
            if mode == "trickle":  # a byte at a time: each read is quick, the whole answer never ends
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                while not state.release.wait(0.05):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                return
            status, payload = ANSWERS[mode]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


NEVER_OPENS = BreakerPolicy(min_calls=1_000_000)


def policy(
    *,
    timeout_s: float = 5.0,
    retries: int = 1,
    max_concurrent: int = 64,
    secondary_retries: int = 0,
    backoff_s: float = 0.2,
    backoff_max_s: float = 2.0,
    breaker: BreakerPolicy = NEVER_OPENS,
) -> AIPolicy:
    return AIPolicy(
        primary=ProviderPolicy(timeout_s=timeout_s, retries=retries, max_concurrent=max_concurrent),
        secondary=ProviderPolicy(timeout_s=timeout_s, retries=secondary_retries, max_concurrent=max_concurrent),
        backoff_s=backoff_s,
        backoff_max_s=backoff_max_s,
        breaker=breaker,
    )


def primary(url: str) -> Provider:
    return Provider("primary", url, SECRET, "integration-1")


def secondary(url: str) -> Provider:
    return Provider("secondary", url, SECRET, "integration-1")


def outcomes(result: Any) -> list[tuple[str, str]]:
    return [(attempt.role, attempt.outcome) for attempt in result.attempts]


# --- one provider: what each answer means ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "outcome", "status", "requests"),
    [
        ("ok", "ok", 200, 1),
        ("accepted", "accepted", 202, 1),
        ("500", "http_error", 500, 2),
        ("503", "http_error", 503, 2),
        ("408", "http_error", 408, 2),
        ("429", "http_error", 429, 2),
        ("400", "http_error", 400, 1),  # the same request would be refused again: no retry
        ("404", "http_error", 404, 1),
        ("malformed", "malformed", 200, 2),
        ("bad_shape", "malformed", 200, 2),
    ],
)
async def test_each_answer_is_classified(
    ai: AIServer, http: httpx.AsyncClient, path: str, outcome: str, status: int, requests: int
) -> None:
    providers = Providers(http, lambda: policy(retries=1), sleep=Sleeps())
    result = await providers.call([primary(ai.url(path))], BODY)
    assert [a.outcome for a in result.attempts] == [outcome] * requests
    assert all(a.status == status and a.role == "primary" for a in result.attempts)
    assert ai.count(path) == requests
    assert result.ok == (outcome in ("ok", "accepted"))
    assert result.accepted == (outcome == "accepted")
    assert (result.provider is not None) == result.ok
    if outcome == "ok":
        assert result.reply is not None
        assert (result.reply.reply, result.reply.confidence) == ("Hello!", 0.9)
        assert result.latency_s > 0
    else:
        assert result.reply is None


async def test_a_closed_port_is_a_connect_error(http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=1), sleep=Sleeps())
    result = await providers.call([primary(f"http://127.0.0.1:{free_port()}/ai")], BODY)
    assert [a.outcome for a in result.attempts] == ["connect_error", "connect_error"]
    assert result.attempts[0].status is None
    assert "ConnectError" in result.attempts[0].detail
    assert not result.ok


async def test_turns_are_signed_like_deliveries(ai: AIServer, http: httpx.AsyncClient) -> None:
    await Providers(http, policy).call([primary(ai.url("ok"))], BODY)
    [(_, headers, body)] = ai.received
    assert body == BODY
    timestamp = headers["desk-timestamp"]
    assert abs(int(timestamp) - time.time()) < 300
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["desk-signature"], f"v1={expected}")
    wrong = hmac.new(b"another secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["desk-signature"] != f"v1={wrong}"


@pytest.mark.parametrize("path", ["hang", "trickle"])
async def test_the_time_limit_bounds_the_whole_request(ai: AIServer, http: httpx.AsyncClient, path: str) -> None:
    providers = Providers(http, lambda: policy(timeout_s=0.3, retries=0))
    began = time.monotonic()
    result = await providers.call([primary(ai.url(path))], BODY)
    elapsed = time.monotonic() - began
    assert [a.outcome for a in result.attempts] == ["timeout"]
    assert 0.3 <= elapsed < 0.3 + TIMING_SLACK_S, elapsed
    assert result.attempts[0].latency_s < 0.3 + TIMING_SLACK_S


# --- retries and backoff ---------------------------------------------------------------------------------------


async def test_retries_back_off_exponentially_up_to_the_cap(ai: AIServer, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    providers = Providers(
        http, lambda: policy(retries=4, backoff_s=0.1, backoff_max_s=0.3), jitter=lambda: 0.5, sleep=sleeps
    )
    result = await providers.call([primary(ai.url("503"))], BODY)
    assert len(result.attempts) == 5
    assert ai.count("503") == 5
    assert sleeps == pytest.approx([0.05, 0.1, 0.15, 0.15])  # min(0.3, 0.1 * 2**i) * 0.5


async def test_backoff_sleeps_lie_within_the_full_jitter_bounds(ai: AIServer, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    providers = Providers(http, lambda: policy(retries=6, backoff_s=0.1, backoff_max_s=1.0), sleep=sleeps)
    for _ in range(5):
        await providers.call([primary(ai.url("500"))], BODY)
    assert len(sleeps) == 30
    bounds = [min(1.0, 0.1 * 2**i) for i in range(6)] * 5
    assert all(0 <= pause <= bound for pause, bound in zip(sleeps, bounds, strict=True)), sleeps
    assert len(set(sleeps)) > 1  # random, not a constant


async def test_no_sleep_without_a_retry(ai: AIServer, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    providers = Providers(http, lambda: policy(retries=3), sleep=sleeps)
    await providers.call([primary(ai.url("ok"))], BODY)
    await providers.call([primary(ai.url("400")), secondary(ai.url("ok"))], BODY)
    assert sleeps == []


# --- failover --------------------------------------------------------------------------------------------------


async def test_fails_over_to_the_secondary_after_the_retries(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=1), sleep=Sleeps())
    result = await providers.call([primary(ai.url("500")), secondary(ai.url("ok"))], BODY)
    assert outcomes(result) == [("primary", "http_error"), ("primary", "http_error"), ("secondary", "ok")]
    assert result.provider == secondary(ai.url("ok"))
    assert result.reply is not None


async def test_a_refusal_fails_over_at_once(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=3), sleep=Sleeps())
    result = await providers.call([primary(ai.url("400")), secondary(ai.url("accepted"))], BODY)
    assert outcomes(result) == [("primary", "http_error"), ("secondary", "accepted")]
    assert result.accepted
    assert result.ok


async def test_both_providers_failing_is_no_answer(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(timeout_s=0.2, retries=0, secondary_retries=1), sleep=Sleeps())
    result = await providers.call([primary(ai.url("hang")), secondary(ai.url("malformed"))], BODY)
    assert not result.ok
    assert result.provider is None
    assert outcomes(result) == [("primary", "timeout"), ("secondary", "malformed"), ("secondary", "malformed")]


async def test_no_providers_is_no_answer(http: httpx.AsyncClient) -> None:
    result = await Providers(http, policy).call([], BODY)
    assert not result.ok
    assert result.attempts == ()


# --- the circuit breaker ---------------------------------------------------------------------------------------

BREAKER = BreakerPolicy(window_s=30.0, min_calls=4, failure_rate=0.5, cooldown_s=10.0, half_open_calls=1)


@dataclass
class Changes:
    seen: list[tuple[str, str, float | None, str | None]] = field(default_factory=list)

    async def __call__(self, provider: Provider, state: str, rate: float | None, error: str | None) -> None:
        self.seen.append((provider.role, state, rate, error))


async def test_the_breaker_opens_at_its_threshold_and_stops_requests(ai: AIServer, http: httpx.AsyncClient) -> None:
    clock, changes = Clock(), Changes()
    providers = Providers(http, lambda: policy(retries=0, breaker=BREAKER), on_change=changes, clock=clock)
    flaky = primary(ai.url("flaky"))
    chain = [flaky, secondary(ai.url("ok"))]
    for mode in ("ok", "ok", "500"):
        ai.modes["/flaky"] = mode
        await providers.call(chain, BODY)
    assert providers.breaker_state(flaky) == "closed"
    assert changes.seen == []
    result = await providers.call(chain, BODY)  # 2 failures of 4: exactly the threshold
    assert outcomes(result) == [("primary", "http_error"), ("secondary", "ok")]
    assert providers.breaker_state(flaky) == "open"
    assert changes.seen == [("primary", "open", 0.5, "HTTP 500")]

    ai.modes["/flaky"] = "ok"
    for _ in range(3):
        result = await providers.call(chain, BODY)
        assert outcomes(result) == [("primary", "breaker_open"), ("secondary", "ok")]
        assert result.provider == secondary(ai.url("ok"))
    assert ai.count("flaky") == 4  # no request reached the provider while open

    clock.now += BREAKER.cooldown_s
    assert providers.breaker_state(flaky) == "half_open"  # before any call asks
    assert {row["key"]: row["state"] for row in providers.snapshot()}[flaky.key] == "half_open"
    result = await providers.call(chain, BODY)
    assert outcomes(result) == [("primary", "ok")]
    assert providers.breaker_state(flaky) == "closed"
    assert [state for _, state, _, _ in changes.seen] == ["open", "half_open", "closed"]
    assert changes.seen[-1][2] is None  # the window was cleared


async def test_a_failed_trial_opens_the_breaker_again(ai: AIServer, http: httpx.AsyncClient) -> None:
    clock, changes = Clock(), Changes()
    providers = Providers(
        http, lambda: policy(retries=3, breaker=BREAKER), on_change=changes, clock=clock, sleep=Sleeps()
    )
    down = primary(ai.url("503"))
    result = await providers.call([down], BODY)
    assert [a.outcome for a in result.attempts] == ["http_error"] * 4  # the 4th opened it: no 5th attempt
    assert providers.breaker_state(down) == "open"
    clock.now += BREAKER.cooldown_s
    result = await providers.call([down], BODY)
    assert [a.outcome for a in result.attempts] == ["http_error", "breaker_open"]  # one trial, then no retry
    assert ai.count("503") == 5
    assert providers.breaker_state(down) == "open"
    clock.now += BREAKER.cooldown_s - 0.01  # the cool-down restarted with the failed trial
    result = await providers.call([down], BODY)
    assert [a.outcome for a in result.attempts] == ["breaker_open"]
    assert ai.count("503") == 5
    assert [state for _, state, _, _ in changes.seen] == ["open", "half_open", "open"]


async def test_a_slow_success_from_before_the_opening_leaves_it_open(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=0, breaker=BREAKER), clock=Clock())
    flaky = primary(ai.url("flaky"))
    ai.modes["/flaky"] = "hold"
    slow = asyncio.create_task(providers.call([flaky], BODY))
    await _until(lambda: ai.count("flaky") == 1)
    ai.modes["/flaky"] = "500"
    for _ in range(4):
        await providers.call([flaky], BODY)
    assert providers.breaker_state(flaky) == "open"
    ai.release.set()
    assert (await slow).ok
    assert providers.breaker_state(flaky) == "open"


async def test_errors_of_on_change_do_not_escape(
    ai: AIServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(provider: Provider, state: str, rate: float | None, error: str | None) -> None:
        raise RuntimeError("the database is down")

    providers = Providers(http, lambda: policy(retries=3, breaker=BREAKER), on_change=broken, sleep=Sleeps())
    result = await providers.call([primary(ai.url("500")), secondary(ai.url("ok"))], BODY)
    assert result.ok
    assert "the database is down" in caplog.text


async def test_a_reloaded_policy_applies_at_once_and_keeps_the_window(ai: AIServer, http: httpx.AsyncClient) -> None:
    current = [policy(retries=0, breaker=replace(BREAKER, min_calls=10))]
    providers = Providers(http, lambda: current[0], sleep=Sleeps())
    down = primary(ai.url("500"))
    for _ in range(3):
        await providers.call([down], BODY)
    assert providers.breaker_state(down) == "closed"
    current[0] = policy(retries=2, breaker=BREAKER)
    result = await providers.call([down], BODY)
    assert [a.outcome for a in result.attempts] == ["http_error", "breaker_open"]  # 4 of 4 failed: open
    assert providers.breaker_state(down) == "open"


# --- the concurrency cap ---------------------------------------------------------------------------------------


async def test_over_the_cap_a_call_waits_for_a_place(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=0, max_concurrent=2))
    chain = [primary(ai.url("hold")), secondary(ai.url("ok"))]
    held = [asyncio.create_task(providers.call(chain, BODY)) for _ in range(2)]
    await _until(lambda: ai.count("hold") == 2)
    assert [row["in_flight"] for row in providers.snapshot()] == [2]
    waiting = asyncio.create_task(providers.call(chain, BODY))
    await asyncio.sleep(0.2)  # give it the chance to send (it must not: no place is free)
    assert ai.count("hold") == 2
    assert not waiting.done()
    ai.release.set()
    for task in [*held, waiting]:
        answered = await task
        assert outcomes(answered) == [("primary", "ok")]
    assert ai.count("hold") == 3
    assert {row["role"]: row["in_flight"] for row in providers.snapshot()} == {"primary": 0}


async def test_over_the_cap_with_no_place_in_time_a_call_fails_over_without_a_request(
    ai: AIServer, http: httpx.AsyncClient
) -> None:
    providers = Providers(http, lambda: policy(timeout_s=0.5, retries=0, max_concurrent=2))
    chain = [primary(ai.url("hold")), secondary(ai.url("ok"))]
    held = [asyncio.create_task(providers.call(chain, BODY)) for _ in range(2)]
    await _until(lambda: ai.count("hold") == 2)
    began = time.monotonic()
    result = await providers.call(chain, BODY)
    assert outcomes(result) == [("primary", "busy"), ("secondary", "ok")]
    assert time.monotonic() - began < 0.5 + 0.3  # the wait for a place is the attempt's time limit, no more
    assert ai.count("hold") == 2
    ai.release.set()
    for task in held:
        await task
    assert {row["role"]: row["in_flight"] for row in providers.snapshot()} == {"primary": 0, "secondary": 0}


async def test_calls_waiting_for_a_place_give_up_at_once_when_the_breaker_opens(
    ai: AIServer, http: httpx.AsyncClient
) -> None:
    # Opens on the first failure: a place comes free only after the call's result is counted, so no waiter can
    # take it before the breaker is open.
    opens_at_once = BreakerPolicy(window_s=30.0, min_calls=1, failure_rate=0.5, cooldown_s=10.0, half_open_calls=1)
    providers = Providers(http, lambda: policy(timeout_s=5.0, retries=0, max_concurrent=2, breaker=opens_at_once))
    chain = [primary(ai.url("hold_503")), secondary(ai.url("ok"))]
    held = [asyncio.create_task(providers.call(chain, BODY)) for _ in range(2)]
    await _until(lambda: ai.count("hold_503") == 2)
    waiting = [asyncio.create_task(providers.call(chain, BODY)) for _ in range(3)]
    await asyncio.sleep(0.2)  # they queue for a place
    assert not any(task.done() for task in waiting)
    began = time.monotonic()
    ai.release.set()  # the two in flight fail: the breaker opens on the first
    results = await asyncio.gather(*held, *waiting)
    assert time.monotonic() - began < 1.0  # not the 5 s a place could take
    assert [outcomes(r) for r in results[:2]] == [[("primary", "http_error"), ("secondary", "ok")]] * 2
    assert [outcomes(r) for r in results[2:]] == [[("primary", "breaker_open"), ("secondary", "ok")]] * 3
    assert ai.count("hold_503") == 2  # the waiting calls never reached it
    assert {row["role"]: row["in_flight"] for row in providers.snapshot()} == {"primary": 0, "secondary": 0}


async def test_a_cancelled_call_frees_its_place(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(retries=0, max_concurrent=1))
    hold = primary(ai.url("hold"))
    task = asyncio.create_task(providers.call([hold], BODY))
    await _until(lambda: ai.count("hold") == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert providers.snapshot()[0]["in_flight"] == 0
    assert providers.breaker_state(hold) == "closed"


async def test_a_cancelled_trial_lets_the_next_call_try(ai: AIServer, http: httpx.AsyncClient) -> None:
    clock = Clock()
    providers = Providers(http, lambda: policy(retries=0, breaker=BREAKER), clock=clock)
    flaky = primary(ai.url("flaky"))
    ai.modes["/flaky"] = "500"
    for _ in range(BREAKER.min_calls):
        await providers.call([flaky], BODY)
    clock.now += BREAKER.cooldown_s
    ai.modes["/flaky"] = "hold"
    trial = asyncio.create_task(providers.call([flaky], BODY))
    await _until(lambda: ai.count("flaky") == BREAKER.min_calls + 1)
    assert [a.outcome for a in (await providers.call([flaky], BODY)).attempts] == ["breaker_open"]
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    ai.modes["/flaky"] = "ok"
    assert outcomes(await providers.call([flaky], BODY)) == [("primary", "ok")]
    assert providers.breaker_state(flaky) == "closed"


# --- the overall deadline --------------------------------------------------------------------------------------


async def test_the_deadline_shortens_the_last_attempt(ai: AIServer, http: httpx.AsyncClient) -> None:
    providers = Providers(http, lambda: policy(timeout_s=2.0, retries=2))
    began = time.monotonic()
    result = await providers.call([primary(ai.url("hang")), secondary(ai.url("ok"))], BODY, deadline_s=0.4)
    elapsed = time.monotonic() - began
    assert 0.4 - 0.01 <= elapsed < 0.4 + TIMING_SLACK_S, elapsed
    assert outcomes(result) == [("primary", "timeout")]  # no time left for a retry or the secondary
    assert ai.count("ok") == 0


async def test_no_backoff_that_the_deadline_cannot_afford(ai: AIServer, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    providers = Providers(http, lambda: policy(retries=2, backoff_s=1.0), jitter=lambda: 1.0, sleep=sleeps)
    result = await providers.call([primary(ai.url("503")), secondary(ai.url("ok"))], BODY, deadline_s=0.8)
    assert outcomes(result) == [("primary", "http_error"), ("secondary", "ok")]
    assert sleeps == []


@pytest.mark.parametrize("deadline_s", [0.0, 0.01, -1.0])
async def test_no_attempt_without_time_for_it(ai: AIServer, http: httpx.AsyncClient, deadline_s: float) -> None:
    providers = Providers(http, policy)
    result = await providers.call([primary(ai.url("ok"))], BODY, deadline_s=deadline_s)
    assert not result.ok
    assert result.attempts == ()
    assert ai.count("ok") == 0
    assert providers.snapshot()[0]["in_flight"] == 0


# --- the healthy path is cheap ---------------------------------------------------------------------------------


async def test_a_first_attempt_success_adds_well_under_a_millisecond() -> None:
    # The transport answers in-process, so that what is measured is Providers' own work, not the network's.
    answer = json.dumps(REPLY).encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=answer))
    async with httpx.AsyncClient(transport=transport) as client:
        providers = Providers(client, policy)
        chain = [primary("http://ai.test/turn")]
        direct, wrapped = [], []
        for _ in range(300):
            began = time.perf_counter()
            response = await client.post("http://ai.test/turn", content=BODY, timeout=5.0)
            response.raise_for_status()
            direct.append(time.perf_counter() - began)
            began = time.perf_counter()
            assert (await providers.call(chain, BODY)).ok
            wrapped.append(time.perf_counter() - began)
    overhead_s = sorted(wrapped)[150] - sorted(direct)[150]
    assert overhead_s < 0.0005, f"{overhead_s * 1000:.3f} ms"


# --- the floor's record: record_breaker on SQLite and PostgreSQL ------------------------------------------------


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    desk_cli(database_url, "migrate")
    database = Database(database_url)
    yield database
    database.dispose()


def report(db: Database, state: str, *, url: str = "http://ai.test/turn", **overrides: Any) -> bool:
    provider = primary(url)
    arguments: dict[str, Any] = {
        "provider_id": provider.key,
        "integration_id": provider.integration_id,
        "role": provider.role,
        "url": provider.url,
        "state": state,
        "failure_rate": 0.75,
        "last_error": "HTTP 503",
    }
    return record_breaker(db, **{**arguments, **overrides})


def alerts(db: Database) -> list[Event]:
    with db.read() as session:
        rows = session.exec(select(Event).where(col(Event.type).startswith("ai.breaker")).order_by(col(Event.id)))
        return list(rows.all())


def audited(db: Database) -> list[str]:
    with db.read() as session:
        rows = session.exec(select(AuditEntry).where(col(AuditEntry.action).startswith("ai.breaker")))
        return sorted(entry.action for entry in rows.all())


def test_an_opening_alerts_once_and_a_closing_once(db: Database) -> None:
    key = primary("http://ai.test/turn").key
    assert report(db, "open")
    assert not report(db, "open")  # another process saw it too: no second alert
    [opened] = alerts(db)
    assert opened.type == "ai.breaker_opened"
    assert opened.data == {
        "provider": {"id": key, "role": "primary", "url": "http://ai.test/turn"},
        "failure_rate": 0.75,
        "last_error": "HTTP 503",
    }
    assert (opened.conversation_id, opened.for_staff, opened.queue_scope, opened.for_integration) == (
        None,
        True,
        True,
        False,
    )

    assert report(db, "half_open", failure_rate=None, last_error=None)
    assert len(alerts(db)) == 1  # half-open only updates the row
    [row] = list_providers(db)
    assert (row.id, row.state, row.integration_id) == (key, "half_open", "integration-1")

    assert report(db, "closed", failure_rate=None, last_error=None)
    assert not report(db, "closed", failure_rate=None, last_error=None)
    assert [event.type for event in alerts(db)] == ["ai.breaker_opened", "ai.breaker_closed"]
    assert audited(db) == ["ai.breaker_closed", "ai.breaker_opened"]
    [row] = list_providers(db)
    assert row.state == "closed"
    assert row.opened_at is not None


def test_a_provider_first_seen_closed_raises_nothing(db: Database) -> None:
    assert report(db, "closed")
    assert not report(db, "closed")
    assert alerts(db) == []
    assert [row.state for row in list_providers(db)] == ["closed"]


def test_an_unknown_state_is_refused(db: Database) -> None:
    with pytest.raises(ValidationFailed) as refused:
        report(db, "ajar")
    assert refused.value.code == "validation_error"
    assert list_providers(db) == []


def test_a_long_error_is_cut_to_fit(db: Database) -> None:
    assert report(db, "open", last_error="x" * 1000)
    [row] = list_providers(db)
    assert row.last_error == "x" * 200


def test_processes_reporting_the_same_opening_raise_one_alert(database_url: str, db: Database) -> None:
    processes = [Database(database_url) for _ in range(4)]  # an engine each, like separate desk processes
    barrier = threading.Barrier(len(processes))

    def open_it(database: Database) -> bool:
        barrier.wait(timeout=10)
        return report(database, "open", url="http://ai.test/shared")

    try:
        with ThreadPoolExecutor(len(processes)) as pool:
            won = list(pool.map(open_it, processes))
    finally:
        for database in processes:
            database.dispose()
    assert sorted(won) == [False, False, False, True]
    assert [event.type for event in alerts(db)] == ["ai.breaker_opened"]


def test_providers_are_listed_primaries_first(db: Database) -> None:
    report(db, "open", url="http://ai.test/b")
    report(db, "closed", url="http://backup.test/a", role="secondary")
    report(db, "half_open", url="http://ai.test/a")
    assert [(row.role, row.url) for row in list_providers(db)] == [
        ("primary", "http://ai.test/a"),
        ("primary", "http://ai.test/b"),
        ("secondary", "http://backup.test/a"),
    ]


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)
