"""Redis pub/sub between processes and hosts. Reconnects with backoff; while Redis is away, the event pump's
periodic poll of the database keeps sockets up to date, and on reconnect every pump polls at once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from contextlib import suppress

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from desk.bus import Bus, BusMessage, Handler

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 5.0


class RedisBus(Bus):
    def __init__(self, url: str, *, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._healthy = False

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        self._client = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None)
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready))
        with suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=3)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def publish(self, message: BusMessage) -> None:
        if self._client is None:
            return
        try:
            await self._client.publish(self.channel, json.dumps({**message, "origin": self.origin}))
        except (RedisError, OSError) as exc:
            self._healthy = False
            log.warning("redis publish failed (%s); other processes will catch up by polling", exc)

    async def _listen(self, ready: asyncio.Event) -> None:
        delay = 0.1
        while True:
            assert self._client is not None
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._healthy = True
                    ready.set()
                    delay = 0.1
                    # Anything published while we were away is in the database: poll now.
                    await self._deliver({"kind": "resync"})
                    async for raw in pubsub.listen():
                        if raw.get("type") != "message":
                            continue
                        message = json.loads(raw["data"])
                        if message.get("origin") == self.origin:
                            continue  # the publishing process already handled its own messages
                        await self._deliver(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._healthy = False
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _deliver(self, message: BusMessage) -> None:
        if self._handler is not None:
            try:
                await self._handler(message)
            except Exception:  # a bad message must not end the subscription
                log.exception("bus handler failed")
