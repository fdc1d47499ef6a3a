"""Tier 1 of the fallback ladder: the AI turn's HTTP call (CONTRACT.md section 6), made resilient.

An integration has a primary provider (its `webhook_url`) and maybe a secondary one (its `fallback_webhook_url`).
`Providers.call` tries them in order. Each provider has a circuit breaker (desk/fallback/breaker.py) and a cap on
calls in flight, both kept per URL in this process. On one provider a call makes up to `retries + 1` attempts,
each under the policy's time limit, with full-jitter exponential backoff between them; a refusal that will not
change on a retry (a 4xx other than 408 and 429) goes straight to the next provider, as does an open breaker or a
full cap, without a request. An optional overall deadline bounds the whole call.

Every attempt counts in its provider's breaker. Breaker changes are handed to `on_change` one at a time per
provider, in order (coalesced when they come faster than it returns): the engine records them with
`desk.actions.providers.record_breaker`, which raises the floor's alerts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from desk.domain.policy import AIPolicy, BreakerPolicy, ProviderPolicy
from desk.fallback.breaker import OPEN, CircuitBreaker
from desk.schemas import TurnReply
from desk.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

PRIMARY = "primary"
SECONDARY = "secondary"

OK = "ok"
ACCEPTED = "accepted"
TIMEOUT = "timeout"
CONNECT_ERROR = "connect_error"
HTTP_ERROR = "http_error"
MALFORMED = "malformed"
BREAKER_OPEN = "breaker_open"
BUSY = "busy"

# An attempt with less time than this left before the deadline is not started: an AI answers a turn no faster.
MIN_ATTEMPT_S = 0.05
DETAIL_MAX_CHARS = 200
_RETRIED_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class Provider:
    role: str  # "primary" (the integration's webhook_url) | "secondary" (its fallback_webhook_url)
    url: str
    secret: str  # the integration's webhook_secret: turns are signed like deliveries
    integration_id: str

    @property
    def key(self) -> str:
        """Breakers and caps are per provider URL: two integrations on one AI share them."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    role: str
    outcome: str  # ok | accepted | timeout | connect_error | http_error | malformed | breaker_open | busy
    status: int | None
    latency_s: float
    detail: str


@dataclass(frozen=True)
class CallResult:
    reply: TurnReply | None  # a 200 answer, validated
    accepted: bool  # a 202: the AI will post through the API later
    provider: Provider | None  # who answered
    attempts: tuple[Attempt, ...]
    latency_s: float  # of the answering attempt (0 when none answered)

    @property
    def ok(self) -> bool:
        return self.reply is not None or self.accepted


BreakerChange = Callable[[Provider, str, float | None, str | None], Awaitable[None]]  # provider, state, rate, error


@dataclass
class _Slot:
    provider: Provider
    breaker: CircuitBreaker
    in_flight: int = 0
    reported: str = "closed"  # the last state handed to on_change
    last_error: str | None = None
    reporting: asyncio.Lock = field(default_factory=asyncio.Lock)
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)  # a place among max_concurrent came free


def _breaker_open(provider: Provider) -> Attempt:
    return Attempt(provider.role, BREAKER_OPEN, None, 0.0, "circuit breaker open")


def _retryable(attempt: Attempt) -> bool:
    if attempt.outcome != HTTP_ERROR or attempt.status is None:
        return True
    return attempt.status >= 500 or attempt.status in _RETRIED_4XX


class Providers:
    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: Callable[[], AIPolicy],
        *,
        on_change: BreakerChange | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._policy = policy
        self._on_change = on_change
        self._clock = clock
        self._jitter = jitter
        self._sleep = sleep
        self._slots: dict[str, _Slot] = {}
        self._breaker_policy: BreakerPolicy | None = None

    async def call(self, providers: Sequence[Provider], body: bytes, *, deadline_s: float | None = None) -> CallResult:
        """POST the signed turn `body` to `providers` in order until one answers 200 (a valid reply) or 202."""
        policy = self._policy()
        if policy.breaker is not self._breaker_policy:
            self._breaker_policy = policy.breaker
            for slot in self._slots.values():
                slot.breaker.update(policy.breaker)
        deadline = None if deadline_s is None else self._clock() + deadline_s
        attempts: list[Attempt] = []
        for provider in providers:
            slot = self._slot(provider, policy.breaker)
            limits = policy.primary if provider.role == PRIMARY else policy.secondary
            result = await self._on_provider(slot, limits, policy, body, deadline, attempts)
            if result is not None:
                return result
            if deadline is not None and deadline - self._clock() < MIN_ATTEMPT_S:
                break
        return CallResult(None, False, None, tuple(attempts), 0.0)

    def breaker_state(self, provider: Provider) -> str:
        slot = self._slots.get(provider.key)
        return slot.breaker.state if slot is not None else "closed"

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "key": key,
                "role": slot.provider.role,
                "url": slot.provider.url,
                "state": slot.breaker.state,
                "failure_rate": slot.breaker.failure_rate,
                "in_flight": slot.in_flight,
            }
            for key, slot in self._slots.items()
        ]

    def _slot(self, provider: Provider, breaker_policy: BreakerPolicy) -> _Slot:
        key = provider.key
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(provider, CircuitBreaker(breaker_policy, self._clock))
        else:
            slot.provider = provider  # the latest role and secret for this URL
        return slot

    async def _on_provider(
        self,
        slot: _Slot,
        limits: ProviderPolicy,
        policy: AIPolicy,
        body: bytes,
        deadline: float | None,
        attempts: list[Attempt],
    ) -> CallResult | None:
        """Attempts on one provider: its answer, or None to go on to the next provider."""
        provider, breaker = slot.provider, slot.breaker
        if not breaker.allow():
            await self._report(slot)
            attempts.append(_breaker_open(provider))
            return None
        # Read before any await, so that the result is counted in the state it was allowed in.
        epoch: int | None = breaker.epoch  # None once the result is recorded: no trial slot left to give back
        waited = await self._take_place(slot, limits)
        if waited is None:
            breaker.abandon(epoch)
            if breaker.state == OPEN:  # opened by the calls this one waited behind: no call, down the ladder now
                attempts.append(_breaker_open(provider))
            else:
                attempts.append(
                    Attempt(provider.role, BUSY, None, limits.timeout_s, f"{slot.in_flight} calls in flight")
                )
            return None
        try:
            await self._report(slot)  # half-open, when this call is its trial
            for number in range(limits.retries + 1):
                if number > 0:
                    if breaker.state == OPEN:  # opened by this call's failures or by concurrent ones
                        attempts.append(_breaker_open(provider))
                        return None
                    pause = min(policy.backoff_max_s, policy.backoff_s * 2 ** (number - 1)) * self._jitter()
                    if deadline is not None and deadline - self._clock() - pause < MIN_ATTEMPT_S:
                        return None
                    await self._sleep(pause)
                    if not breaker.allow():
                        attempts.append(_breaker_open(provider))
                        return None
                    epoch = breaker.epoch
                    await self._report(slot)
                # Time spent waiting for a place is the first attempt's: the turn's time limit holds.
                timeout = limits.timeout_s - (waited if number == 0 else 0.0)
                if timeout < MIN_ATTEMPT_S:
                    attempts.append(Attempt(provider.role, BUSY, None, waited, f"{slot.in_flight} calls in flight"))
                    return None
                if deadline is not None:
                    timeout = min(timeout, deadline - self._clock())
                    if timeout < MIN_ATTEMPT_S:
                        return None
                attempt, reply = await self._attempt(provider, body, timeout)
                attempts.append(attempt)
                succeeded = attempt.outcome in (OK, ACCEPTED)
                breaker.record(succeeded, epoch=epoch)
                epoch = None
                if not succeeded:
                    slot.last_error = attempt.detail
                await self._report(slot)
                if succeeded:
                    return CallResult(reply, attempt.outcome == ACCEPTED, provider, tuple(attempts), attempt.latency_s)
                if not _retryable(attempt):
                    return None
            return None
        finally:
            slot.in_flight -= 1
            if epoch is not None:
                breaker.abandon(epoch)  # allowed but never attempted (deadline) or cancelled mid-request
            async with slot.freed:
                if breaker.state == OPEN:
                    slot.freed.notify_all()  # every call waiting for a place gives up on this provider at once
                else:
                    slot.freed.notify()

    async def _take_place(self, slot: _Slot, limits: ProviderPolicy) -> float | None:
        """A place among the provider's `max_concurrent` calls: at once, or the first to come free within the
        attempt's time limit (a burst waits its turn instead of failing over a healthy AI). Returns the seconds
        waited, or None when no place came free in time or the breaker opened meanwhile."""
        if slot.in_flight < limits.max_concurrent:
            slot.in_flight += 1
            return 0.0
        began = time.monotonic()
        async with slot.freed:
            try:
                await asyncio.wait_for(
                    slot.freed.wait_for(lambda: slot.in_flight < limits.max_concurrent or slot.breaker.state == OPEN),
                    limits.timeout_s,
                )
            except TimeoutError:
                return None
            if slot.breaker.state == OPEN:
                return None
            slot.in_flight += 1
        return time.monotonic() - began

    async def _attempt(self, provider: Provider, body: bytes, timeout_s: float) -> tuple[Attempt, TurnReply | None]:
        headers = signed_headers(provider.secret, body)
        began = self._clock()
        try:
            # httpx's timeout bounds each read, not the whole answer: asyncio's bounds a server trickling bytes.
            async with asyncio.timeout(timeout_s):
                response = await self._http.post(
                    provider.url, content=body, headers=headers, timeout=httpx.Timeout(timeout_s)
                )
        except (httpx.TimeoutException, TimeoutError):
            return self._failed(provider, TIMEOUT, None, began, f"no answer within {timeout_s:.3g} s"), None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self._failed(provider, CONNECT_ERROR, None, began, f"{type(exc).__name__}: {exc}"), None
        latency_s = self._clock() - began
        status = response.status_code
        if status == 202:
            return Attempt(provider.role, ACCEPTED, status, latency_s, ""), None
        if status != 200:
            return Attempt(provider.role, HTTP_ERROR, status, latency_s, f"HTTP {status}"), None
        try:
            reply = TurnReply.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            detail = f"not a turn reply: {where}: {first['msg']}"[:DETAIL_MAX_CHARS]
            return Attempt(provider.role, MALFORMED, status, latency_s, detail), None
        return Attempt(provider.role, OK, status, latency_s, ""), reply

    def _failed(self, provider: Provider, outcome: str, status: int | None, began: float, detail: str) -> Attempt:
        return Attempt(provider.role, outcome, status, self._clock() - began, detail[:DETAIL_MAX_CHARS])

    async def _report(self, slot: _Slot) -> None:
        if slot.breaker.state == slot.reported:
            return
        async with slot.reporting:  # one on_change at a time per provider, so the last word is the latest state
            state = slot.breaker.state
            if state == slot.reported:
                return
            slot.reported = state
            if self._on_change is None:
                return
            try:
                await self._on_change(slot.provider, state, slot.breaker.failure_rate, slot.last_error)
            except Exception:
                log.exception(
                    "recording the %s breaker of %s as %s failed", slot.provider.role, slot.provider.url, state
                )
