"""The event pump: one per process, it reads new event rows in id order and hands each to the local subscribers
that may receive it (staff sockets, customer sockets, long-polls, webhook delivery).

Delivery is driven by pokes (after a local commit, or from the bus) and, as a safety net, by a periodic poll, so a
lost bus message delays an event by at most POLL_S. Reading rows once per process instead of once per socket keeps
the database load independent of the number of sockets. A subscriber whose queue overflows is marked lagged and
resynchronises from the database itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
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
        async with self._changed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

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
        while True:
            records = await anyio.to_thread.run_sync(self._fetch, self.cursor)
            if not records:
                return
            for record in records:
                for subscription in list(self._subscriptions):
                    if subscription.accepts(record):
                        subscription.offer(record)
            self.cursor = records[-1].id
            async with self._changed:
                self._changed.notify_all()
            if len(records) < BATCH:
                return
