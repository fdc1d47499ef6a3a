"""The per-process runtime: database, bus, event pump, AI turns and webhook delivery, wired together.

Actions are synchronous and run in worker threads; when one commits events, the runtime pokes the local pump and
tells the other processes over the bus.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import httpx

from desk.actions.fallback import due_for_requeue, record_ai_stats, requeue
from desk.actions.outlook import Outlook, queue_outlook
from desk.actions.providers import record_breaker
from desk.actions.reads import recent_claim_rate
from desk.bus import Bus, BusMessage, make_bus
from desk.config import Settings
from desk.fallback.engine import FallbackEngine, with_timeout
from desk.fallback.policy_file import PolicySource
from desk.fallback.providers import Provider, Providers
from desk.realtime.claims import ClaimRate
from desk.realtime.presence import FRAME_TYPE, Presence
from desk.realtime.pump import EventPump
from desk.store.db import Database
from desk.store.events import EventRecord
from desk.store.types import utcnow
from desk.webhooks.delivery import Deliverer

POLICY_CHECK_S = 2.0  # how often the policy file is looked at for changes (a stat, and a read when it changed)
REQUEUE_SWEEP_S = 5.0  # how often deferred conversations whose time has come are put back in the queue
STATS_FLUSH_S = 10.0  # AI turn counts are written this often (when there were turns): the KPIs' resolution
# Measured with `make bench` at 1,000 msg/s: 1 thread cannot keep up with the round trips, 4 and 8 lose more to
# the GIL than they gain in overlap (p99 50-380 ms against 22-38 ms with 2).
POSTGRES_THREADS = 2
T = TypeVar("T")
log = logging.getLogger(__name__)


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
        self.policy = PolicySource(settings.policy_file)
        self.providers = Providers(
            self.http,
            lambda: with_timeout(self.policy.current.ai, settings.turn_timeout_s),
            on_change=self._breaker_changed,
        )
        self.turns = FallbackEngine(
            self.call,
            self.providers,
            lambda: self.policy.current,
            self._outlook,
            transient=self.transient,
        )
        self.deliverer = Deliverer(self.db, self.http, self.pump, run=self.run_serial)
        self.presence = Presence(self.transient)
        self.claim_rate = ClaimRate(partial(self.call, recent_claim_rate))
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
        self._forever(self._watch_policy)
        self._forever(self._requeue_deferred)
        self._forever(self._flush_stats)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        counts = self.turns.take_stats()
        if counts:
            with suppress(Exception):
                await self.call(record_ai_stats, counts=counts, seconds=STATS_FLUSH_S)
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

    async def run_serial(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` on the database thread(s) that `call` uses, for components that hold the database
        themselves (webhook delivery)."""
        return await asyncio.get_running_loop().run_in_executor(self._serial, partial(fn, *args))

    async def call_slow(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Like `call`, for CPU-heavy work (password hashing) that must not hold up the database thread."""
        return await anyio.to_thread.run_sync(partial(fn, self.db, *args, **kwargs))

    def _forever(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.get_running_loop().create_task(job())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _watch_policy(self) -> None:
        while True:
            await asyncio.sleep(POLICY_CHECK_S)
            try:
                if await anyio.to_thread.run_sync(self.policy.reload):
                    # Warning level, the server's log level: operators should see what routes from now on.
                    log.warning("fallback policy reloaded: version %s", self.policy.current.version)
            except Exception:
                log.exception("policy reload failed")

    async def _requeue_deferred(self) -> None:
        while True:
            try:
                now = utcnow()
                for conversation_id in await self.call(due_for_requeue, now=now):
                    await self.call(requeue, conversation_id=conversation_id, now=now)
            except Exception:
                log.exception("requeue sweep failed")
            await asyncio.sleep(REQUEUE_SWEEP_S)

    async def _flush_stats(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(STATS_FLUSH_S)
            counts = self.turns.take_stats()
            now = time.monotonic()
            if counts:
                try:
                    await self.call(record_ai_stats, counts=counts, seconds=now - started)
                except Exception:
                    log.exception("AI stats not recorded")
            started = now

    async def _outlook(self, skills: Sequence[str]) -> Outlook:
        return await self.call(queue_outlook, skills=skills, online=list(self.presence.online_users()))

    async def _breaker_changed(
        self, provider: Provider, state: str, failure_rate: float | None, last_error: str | None
    ) -> None:
        log.warning("AI provider %s (%s) circuit breaker is now %s", provider.role, provider.url, state)
        await self.call(
            record_breaker,
            provider_id=provider.key,
            integration_id=provider.integration_id,
            role=provider.role,
            url=provider.url,
            state=state,
            failure_rate=failure_rate,
            last_error=last_error,
        )

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
        self.claim_rate.saw(r.type for r in records)
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
            records = [EventRecord.from_wire(wire) for wire in message["events"]]
            self.claim_rate.saw(r.type for r in records)
            self.pump.offer(records)
        else:
            self.pump.poke()
