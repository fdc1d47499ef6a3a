"""The cached claim rate behind queued customers' ETAs: one read per TTL, one read for concurrent callers, and a
claim makes the next caller read again (also one that lands while a read is under way)."""

from __future__ import annotations

import asyncio

from desk.realtime.claims import ClaimRate


class Reads:
    def __init__(self) -> None:
        self.values = [0.1, 0.2, 0.3, 0.4]
        self.count = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> float | None:
        self.count += 1
        value = self.values[self.count - 1]
        if self.gate is not None:
            await self.gate.wait()
        return value


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_read_serves_until_the_ttl_runs_out() -> None:
    reads, clock = Reads(), Clock()
    rate = ClaimRate(reads, ttl_s=5.0, clock=clock)
    assert await rate.current() == 0.1
    clock.now = 4.9
    assert await rate.current() == 0.1
    assert reads.count == 1
    clock.now = 5.0
    assert await rate.current() == 0.2
    assert reads.count == 2


async def test_concurrent_callers_share_one_read() -> None:
    reads = Reads()
    reads.gate = asyncio.Event()
    rate = ClaimRate(reads, clock=Clock())
    callers = [asyncio.create_task(rate.current()) for _ in range(50)]
    await asyncio.sleep(0)
    reads.gate.set()
    assert await asyncio.gather(*callers) == [0.1] * 50
    assert reads.count == 1


async def test_a_claim_makes_the_next_caller_read_again() -> None:
    reads = Reads()
    rate = ClaimRate(reads, clock=Clock())
    assert await rate.current() == 0.1
    rate.saw(["message.created", "handoff.created"])  # no claim: the rate stands
    assert await rate.current() == 0.1
    rate.saw(["message.created", "handoff.claimed"])
    assert await rate.current() == 0.2
    rate.saw(["handoff.assigned"])
    assert await rate.current() == 0.3
    assert reads.count == 3


async def test_a_read_under_way_when_a_claim_lands_is_not_kept() -> None:
    reads = Reads()
    reads.gate = asyncio.Event()
    rate = ClaimRate(reads, clock=Clock())
    first = asyncio.create_task(rate.current())
    while reads.count == 0:
        await asyncio.sleep(0)
    rate.saw(["handoff.claimed"])  # the read began before this claim
    reads.gate.set()
    assert await first == 0.1  # its caller gets it...
    assert await rate.current() == 0.2  # ...but the next one reads again
    assert reads.count == 2
