"""Who has the desk open, and which conversation each page shows: the floor's presence and the workspace's
"also viewing" avatars.

Presence is ephemeral, so it never touches the database: each process announces its own pages as transient frames
(to itself and, over the bus, to the other processes) when they open and close, and again every HEARTBEAT_S. Every
process keeps the union of what it heard; an entry not heard of for EXPIRE_S (a crashed process, a lost "gone")
drops out. A process that starts asks the others to announce theirs again ("sync"), so it knows the floor at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

HEARTBEAT_S = 15.0
EXPIRE_S = 40.0
FRAME_TYPE = "presence"

Publish = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
# Told what changed: the conversations whose viewers changed, and whether who is online changed.
Listener = Callable[[set[str], bool], None]


@dataclass(frozen=True)
class Page:
    """One open desk page (one `/ws/ui` socket)."""

    id: str
    user_id: str
    name: str
    conversation_id: str | None

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "name": self.name, "conversation_id": self.conversation_id}


class Presence:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._local: dict[str, Page] = {}
        self._seen: dict[str, tuple[Page, float]] = {}  # every process's pages, with when they were last heard of
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self.version = 0  # grows with every change: what shared renderings of the floor are keyed by

    async def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat())
        await self._publish({"type": FRAME_TYPE, "op": "sync"})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def listen(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    async def opened(self, page: Page) -> None:
        self._local[page.id] = page
        await self._publish(_here([page.wire()]))

    async def closed(self, page_id: str) -> None:
        if self._local.pop(page_id, None) is not None:
            await self._publish({"type": FRAME_TYPE, "op": "gone", "ids": [page_id]})

    def online_users(self) -> dict[str, int]:
        """User id → how many desk pages they have open."""
        counts: dict[str, int] = {}
        for page, _ in self._seen.values():
            counts[page.user_id] = counts.get(page.user_id, 0) + 1
        return counts

    def viewers(self, conversation_id: str) -> list[Page]:
        """One page per user who has this conversation open, in the order they opened it."""
        users: dict[str, Page] = {}
        for page, _ in self._seen.values():
            if page.conversation_id == conversation_id and page.user_id not in users:
                users[page.user_id] = page
        return list(users.values())

    def on_frame(self, frame: dict[str, Any]) -> None:
        """A presence frame from this process or another one."""
        op = frame.get("op")
        if op == "sync":
            if self._local:
                pages = [page.wire() for page in self._local.values()]
                reply = asyncio.get_running_loop().create_task(self._publish(_here(pages)))
                self._replies.add(reply)
                reply.add_done_callback(self._replies.discard)
            return
        before = self.online_users()
        touched: set[str] = set()
        now = time.monotonic()
        if op == "here":
            for wire in frame.get("pages", []):
                page = Page(**wire)
                old = self._seen.get(page.id)
                if old is None or old[0] != page:
                    touched.update(c for c in (page.conversation_id, old[0].conversation_id if old else None) if c)
                self._seen[page.id] = (page, now)
        elif op == "gone":
            for page_id in frame.get("ids", []):
                old = self._seen.pop(page_id, None)
                if old is not None and old[0].conversation_id:
                    touched.add(old[0].conversation_id)
        self._notify(touched, self.online_users() != before)

    def _expire(self) -> None:
        cutoff = time.monotonic() - EXPIRE_S
        before = self.online_users()
        touched: set[str] = set()
        for page_id, (page, seen_at) in list(self._seen.items()):
            if seen_at < cutoff and page_id not in self._local:
                del self._seen[page_id]
                if page.conversation_id:
                    touched.add(page.conversation_id)
        self._notify(touched, self.online_users() != before)

    def _notify(self, conversations: set[str], online_changed: bool) -> None:
        if not conversations and not online_changed:
            return
        self.version += 1
        for listener in list(self._listeners):
            listener(conversations, online_changed)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self._expire()
            if self._local:
                with suppress(Exception):  # the bus may be down; the next beat tries again
                    pages = [page.wire() for page in self._local.values()]
                    await self._publish(_here(pages))


def _here(pages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": FRAME_TYPE, "op": "here", "pages": pages}
