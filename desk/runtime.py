"""The per-process runtime: database, bus, event pump, AI turns and webhook delivery, wired together.

Actions are synchronous and run in worker threads; when one commits events, the runtime pokes the local pump and
tells the other processes over the bus.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import httpx

from desk.bus import Bus, BusMessage, make_bus
from desk.config import Settings
from desk.fallback.turns import TurnDispatcher
from desk.realtime.presence import FRAME_TYPE, Presence
from desk.realtime.pump import EventPump
from desk.store.db import Database
from desk.store.events import EventRecord
from desk.webhooks.delivery import Deliverer

# Measured with `make bench` at 1,000 msg/s: 1 thread cannot keep up with the round trips, 4 and 8 lose more to
# the GIL than they gain in overlap (p99 50-380 ms against 22-38 ms with 2).
POSTGRES_THREADS = 2
T = TypeVar("T")


_collected: contextvars.ContextVar[list[EventRecord] | None] = contextvars.ContextVar("desk_collected", default=None)


@dataclass(frozen=True)
class _Raised:
    error: Exception


def _collecting(job: Callable[[], T]) -> tuple[T | _Raised, list[EventRecord]]:
    """Run `job` in a worker thread, collecting the events its commits write (even if it fails afterwards)."""
    token = _collected.set([])
    try:
        try:
            return job(), _collected.get() or []
        except Exception as error:
            return _Raised(error), _collected.get() or []
    finally:
        _collected.reset(token)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        namespace = hashlib.sha1(settings.database_url.encode(), usedforsecurity=False).hexdigest()[:12]
        self.bus: Bus = make_bus(settings.redis_url, namespace)
        self.pump = EventPump(self.db)
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.turns = TurnDispatcher(
            self.call,
            self.http,
            secret=settings.secret_key,
            base_url=settings.base_url,
            timeout_s=settings.turn_timeout_s,
            transient=self.transient,
        )
        self.deliverer = Deliverer(self.db, self.http, self.pump)
        self.presence = Presence(self.transient)
        self._serial = ThreadPoolExecutor(1 if self.db.is_sqlite else POSTGRES_THREADS, thread_name_prefix="desk-db")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.db.commit_listeners.append(self._on_commit)
        await self.pump.start()
        await self.bus.start(self._on_bus)
        await self.deliverer.start()
        await self.presence.start()

    async def stop(self) -> None:
        await self.presence.stop()
        await self.turns.close()
        await self.deliverer.stop()
        await self.bus.stop()
        await self.pump.stop()
        await self.http.aclose()
        self.db.commit_listeners.remove(self._on_commit)
        self._serial.shutdown(wait=True)
        self.db.dispose()

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a synchronous action (or read) with the database off the event loop.

        SQLite takes one writer at a time, so its work goes to one dedicated thread: queueing there is cheaper
        than a convoy of pool threads contending for the write lock and the GIL. PostgreSQL gets a few threads,
        enough to overlap round trips to the server without the GIL thrashing between dozens.
        """
        job = partial(_collecting, partial(fn, self.db, *args, **kwargs))
        result, records = await asyncio.get_running_loop().run_in_executor(self._serial, job)
        if records:
            self._committed(records)
        if isinstance(result, _Raised):
            raise result.error
        return result

    async def call_slow(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `call`, for CPU-heavy work (password hashing) that must not hold up the database thread."""
        return await anyio.to_thread.run_sync(partial(fn, self.db, *args, **kwargs))

    async def transient(self, frame: dict[str, Any]) -> None:
        """An ephemeral frame (typing, presence): to this process now, and to the other processes."""
        self._on_transient(frame)
        await self.bus.publish({"kind": "transient", "frame": frame})

    def _on_transient(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == FRAME_TYPE:
            self.presence.on_frame(frame)
        else:
            self.pump.dispatch_transient(frame)

    def _on_commit(self, records: list[EventRecord]) -> None:
        collected = _collected.get()
        if collected is not None:  # a `call`: its caller dispatches them when it resumes, one wake-up fewer
            collected.extend(records)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._committed, records)

    def _committed(self, records: list[EventRecord]) -> None:
        self.pump.offer(records)
        if not self.bus.remote:
            return
        message = {"kind": "events", "events": [record.wire() for record in records]}
        task = asyncio.get_running_loop().create_task(self.bus.publish(message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_bus(self, message: BusMessage) -> None:
        kind = message.get("kind")
        if kind == "transient":
            self._on_transient(message["frame"])
        elif kind == "events" and message.get("events"):
            self.pump.offer([EventRecord.from_wire(wire) for wire in message["events"]])
        else:
            self.pump.poke()
