"""Fragments rendered once and shared by every socket of the process that needs the same one.

A fragment that is the same for many viewers (the floor) is rendered once per change, keyed by what caused it, and
every socket reacting to that change awaits the same rendering instead of reading and rendering again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from weakref import WeakKeyDictionary

from desk.runtime import Runtime

KEPT = 32


class SharedRenderings:
    def __init__(self) -> None:
        self._by_key: OrderedDict[Hashable, asyncio.Future[str]] = OrderedDict()

    async def get(self, key: Hashable, make: Callable[[], Awaitable[str]]) -> str:
        future = self._by_key.get(key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._by_key[key] = future
            future.add_done_callback(lambda f: self._forget_failed(key, f))
            while len(self._by_key) > KEPT:
                self._by_key.popitem(last=False)
        return await asyncio.shield(future)

    def _forget_failed(self, key: Hashable, future: asyncio.Future[str]) -> None:
        if (future.cancelled() or future.exception() is not None) and self._by_key.get(key) is future:
            del self._by_key[key]


_floors: WeakKeyDictionary[Runtime, SharedRenderings] = WeakKeyDictionary()


def floor_renderings_for(rt: Runtime) -> SharedRenderings:
    if rt not in _floors:
        _floors[rt] = SharedRenderings()
    return _floors[rt]
