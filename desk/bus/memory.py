"""The in-process bus: with one process there is nobody else to tell (the runtime handles its own messages)."""

from __future__ import annotations

from desk.bus import Bus, BusMessage, Handler


class MemoryBus(Bus):
    @property
    def remote(self) -> bool:
        return False

    async def start(self, handler: Handler) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, message: BusMessage) -> None:
        pass
