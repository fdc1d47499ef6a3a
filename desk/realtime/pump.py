"""The event pump: one per process, it reads new event rows in id order and hands each to the local subscribers
that may receive it (staff sockets, customer sockets, long-polls, webhook delivery).

Events committed in this process, or received whole from the bus, are dispatched at once when they continue the
cursor without a gap; anything else (a gap, a poke) makes the pump read the rows after its cursor from the
database. A periodic poll is the safety net, so a lost bus message delays an event by at most POLL_S. Reading rows
once per process instead of once per socket keeps the database load independent of the number of sockets. A
subscriber whose queue overflows is marked lagged and resynchronises from the database itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from itertools import pairwise
from typing import Any

import anyio.to_thread

from desk.store.db import Database
from desk.store.events import EventRecord, fetch_after, last_event_id

log = logging.getLogger(__name__)

POLL_S = 1.0
BATCH = 1000
QUEUE_MAX = 2000

Item = EventRecord | dict[str, Any]  # an event row, or an ephemeral frame (typing)


class Subscription:
    def __init__(self, accepts: Callable[[EventRecord], bool], accepts_transient: Callable[[dict[str, Any]], bool]):
        self.accepts = accepts
        self.accepts_transient = accepts_transient
        self.queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_MAX)
        self.lagged = False

    def offer(self, item: Item) -> None:
        if self.lagged:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagged = True
            # Wake the reader so it notices and resynchronises.
            with suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait({"type": "_lagged"})


class EventPump:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cursor = 0
        self._subscriptions: set[Subscription] = set()
        self._poke = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._draining = False
        self._waiters = 0
        self._notify_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.cursor = await anyio.to_thread.run_sync(self._last_id)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        self._poke.set()

    def offer(self, records: list[EventRecord]) -> None:
        """Newly committed events: dispatched now if they follow the cursor, otherwise read from the database."""
        fresh = [r for r in records if r.id > self.cursor]
        if not fresh:
            return
        contiguous = all(b.id == a.id + 1 for a, b in pairwise(fresh))
        if self._draining or fresh[0].id != self.cursor + 1 or not contiguous:
            self.poke()
            return
        self._dispatch(fresh)

    def subscribe(self, subscription: Subscription) -> Subscription:
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def dispatch_transient(self, frame: dict[str, Any]) -> None:
        for subscription in list(self._subscriptions):
            if subscription.accepts_transient(frame):
                subscription.offer(frame)

    async def wait_changed(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return after the next batch is dispatched, or after `timeout` seconds."""
        self._waiters += 1
        try:
            async with self._changed:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            self._waiters -= 1

    def _last_id(self) -> int:
        with self.db.read() as session:
            return last_event_id(session)

    def _fetch(self, after: int) -> list[EventRecord]:
        with self.db.read() as session:
            return fetch_after(session, after, BATCH)

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), POLL_S)
            self._poke.clear()
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly away; the next poll retries
                log.exception("event pump failed to read events")

    async def _drain(self) -> None:
        self._draining = True
        try:
            while True:
                records = [r for r in await anyio.to_thread.run_sync(self._fetch, self.cursor) if r.id > self.cursor]
                if not records:
                    return
                self._dispatch(records)
                if len(records) < BATCH:
                    return
        finally:
            self._draining = False

    def _dispatch(self, records: list[EventRecord]) -> None:
        """Hand events to subscribers in id order and move the cursor past them. Never awaits: no interleaving."""
        subscriptions = list(self._subscriptions)
        for record in records:
            for subscription in subscriptions:
                if subscription.accepts(record):
                    subscription.offer(record)
        self.cursor = records[-1].id
        if self._waiters == 0:
            return
        waiters = asyncio.get_running_loop().create_task(self._notify_changed())
        self._notify_tasks.add(waiters)
        waiters.add_done_callback(self._notify_tasks.discard)

    async def _notify_changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()
