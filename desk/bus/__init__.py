"""Pub/sub between server processes, chosen by URL: in-process by default, Redis with DESK_REDIS_URL.

The bus is only an accelerator: it carries "new events up to id N" pokes and ephemeral frames (typing). Durable
state is read from the database, so a lost bus message delays delivery until the next poll, never loses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

BusMessage = dict[str, Any]
Handler = Callable[[BusMessage], Awaitable[None]]


class Bus(ABC):
    """Carries messages to the *other* processes; each process handles what it publishes itself."""

    @abstractmethod
    async def start(self, handler: Handler) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish(self, message: BusMessage) -> None: ...

    @property
    def healthy(self) -> bool:
        return True

    @property
    def remote(self) -> bool:
        """Whether there are other processes to tell (an in-process bus has none)."""
        return True


def make_bus(redis_url: str | None, namespace: str) -> Bus:
    if redis_url:
        from desk.bus.redis import RedisBus

        return RedisBus(redis_url, channel=f"desk:{namespace}:events")
    from desk.bus.memory import MemoryBus

    return MemoryBus()
