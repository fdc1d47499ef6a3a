"""The live queue and "my conversations" (templates/_queue.html, _queue_item.html, _my_conversations.html)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from desk.actions.reads import my_conversations, queue
from desk.auth.principals import StaffPrincipal
from desk.runtime import Runtime
from desk.web.templating import render

QUEUE_LIMIT = 200
RENDERINGS_KEPT = 32


async def load_queue(rt: Runtime, me: StaffPrincipal, skill: str | None = None) -> list[dict[str, Any]]:
    return await rt.call(queue, me, skill=skill, limit=QUEUE_LIMIT)


async def load_mine(rt: Runtime, me: StaffPrincipal) -> list[dict[str, Any]]:
    return await rt.call(my_conversations, me)


def queue_html(items: list[dict[str, Any]], *, oob: bool = False) -> str:
    """The same for every viewer (so one rendering can go to every socket)."""
    return render("_queue.html", items=items, oob=oob)


def mine_html(items: list[dict[str, Any]], *, oob: bool = False) -> str:
    return render("_my_conversations.html", mine=items, oob=oob)


class QueueRenderings:
    """The queue rendered once per triggering event id (and skill filter), shared by every socket of the process.

    A rendering started after event N committed shows the queue at N or later, so it serves every socket that
    reacts to N.
    """

    def __init__(self) -> None:
        self._by_event: OrderedDict[tuple[int, str | None], asyncio.Future[str]] = OrderedDict()

    async def get(self, rt: Runtime, viewer: StaffPrincipal, event_id: int, skill: str | None = None) -> str:
        key = (event_id, skill)
        future = self._by_event.get(key)
        if future is None:
            future = asyncio.ensure_future(self._render(rt, viewer, skill))
            self._by_event[key] = future
            future.add_done_callback(lambda f: self._forget_failed(key, f))
            while len(self._by_event) > RENDERINGS_KEPT:
                self._by_event.popitem(last=False)
        return await asyncio.shield(future)

    @staticmethod
    async def _render(rt: Runtime, viewer: StaffPrincipal, skill: str | None) -> str:
        return queue_html(await load_queue(rt, viewer, skill), oob=True)

    def _forget_failed(self, key: tuple[int, str | None], future: asyncio.Future[str]) -> None:
        if (future.cancelled() or future.exception() is not None) and self._by_event.get(key) is future:
            del self._by_event[key]


_renderings: WeakKeyDictionary[Runtime, QueueRenderings] = WeakKeyDictionary()


def renderings_for(rt: Runtime) -> QueueRenderings:
    if rt not in _renderings:
        _renderings[rt] = QueueRenderings()
    return _renderings[rt]
