"""The queue's recent claim rate, as every queued customer's ETA needs it: read at most once per TTL_S per process.

A burst of handoffs (an AI outage) sends every new customer in the queue a status frame with an ETA; without the
cache each frame would read the latest claims again, though they only change with a claim.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

TTL_S = 5.0
# A claim changes the rate: the next ETA reads it again (on any process, as the event reaches it).
CLAIM_EVENTS = frozenset({"handoff.claimed", "handoff.assigned", "handoff.transferred"})


class ClaimRate:
    def __init__(
        self,
        read: Callable[[], Awaitable[float | None]],
        *,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: float | None = None
        self._read_at: float | None = None
        self._reading: asyncio.Task[float | None] | None = None
        self._claims = 0  # claims seen: a read that began before one is not kept

    async def current(self) -> float | None:
        """Claims per second lately (None: too few claims to tell), read at most TTL_S ago and since the last claim
        this process heard of (its own, or another's as the event arrives). Callers that come while it is being
        read wait for that one read."""
        if self._read_at is not None and self._clock() - self._read_at < self._ttl_s:
            return self._value
        if self._reading is None:
            self._reading = asyncio.create_task(self._refresh())
        return await asyncio.shield(self._reading)

    def saw(self, event_types: Iterable[str]) -> None:
        if not CLAIM_EVENTS.isdisjoint(event_types):
            self._claims += 1
            self._read_at = None

    async def _refresh(self) -> float | None:
        claims = self._claims
        try:
            value = await self._read()
        finally:
            self._reading = None
        if claims == self._claims:
            self._value, self._read_at = value, self._clock()
        return value
