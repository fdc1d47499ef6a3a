"""The live queue and "my conversations" (templates/_queue.html, _my_conversations.html).

The queue fragment is the same for every viewer with the same skill filter (no names of the viewer, no CSRF token:
claiming goes through static/queue.js with the page's token), so one rendering per change and filter serves every
socket (`QueueRenderings`). "My conversations" differs per viewer; the lists all open pages ask for after a change are
read in one query (`MineLoader`). Times are rendered as text for the moment of rendering and carry their instants in
`datetime` attributes; queue.js keeps the text and the SLA colour current every second, with the same rules as
`sla_class` and `duration` here.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from desk.actions.reads import conversations_held_by, filter_skills, queue_page
from desk.auth.principals import StaffPrincipal
from desk.runtime import Runtime
from desk.store.events import EventRecord
from desk.store.types import utcnow
from desk.web.templating import parse_time, percent, render

QUEUE_LIMIT = 200
RENDERINGS_KEPT = 32
MAX_SKILL_CHARS = 64
SLA_OK_SHARE = 0.5  # more than half of the SLA left: ok; less: warn; past the deadline: breached
MINUTE_S, HOUR_S, DAY_S = 60, 3600, 86400


@dataclass(frozen=True)
class QueueView:
    items: list[dict[str, Any]]
    total: int  # all that wait (for the skill), shown or not
    skill: str | None = None

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.items))


def skill_filter(value: str | None) -> str | None:
    """The skill a page or socket asked to filter by: none when empty or too long to be a skill."""
    value = (value or "").strip()
    return value if value and len(value) <= MAX_SKILL_CHARS else None


async def load_queue(rt: Runtime, me: StaffPrincipal, skill: str | None = None) -> QueueView:
    page = await rt.call(queue_page, me, skill=skill, limit=QUEUE_LIMIT)
    return QueueView(page.items, page.total, skill)


async def load_mine(rt: Runtime, me: StaffPrincipal) -> list[dict[str, Any]]:
    return await _mine_loader(rt).load(me.id)


async def load_filter_skills(rt: Runtime, me: StaffPrincipal, current: str | None = None) -> list[str]:
    """The filter's choices: skills in the queue, the viewer's own, and the one asked for (even if unknown)."""
    skills = await rt.call(filter_skills, me)
    return sorted({*skills, current}) if current and current not in skills else skills


def mine_changed(user_id: str, held: Collection[str], events: Iterable[EventRecord]) -> bool:
    """Whether these events can change what "my conversations" shows: something happened in a conversation the user
    holds (a message, a transfer away, a hand-back), or one came to them (a claim, an assignment, a transfer).

    For the socket: re-reading every page's list on every queue event costs one read per open page per change.
    """
    for event in events:
        agent = event.data.get("agent")
        if event.conversation_id in held or event.agent_id == user_id:
            return True
        if isinstance(agent, dict) and agent.get("id") == user_id:
            return True
    return False


def held_ids(mine: list[dict[str, Any]]) -> set[str]:
    """The conversations a "my conversations" list shows (what `mine_changed` compares events with)."""
    return {item["conversation_id"] for item in mine}


def queue_context(view: QueueView, now: datetime | None = None) -> dict[str, Any]:
    """What _queue.html needs, for a page that includes it."""
    at = now or utcnow()
    return {"view": view, "items": [_shown(item, at) for item in view.items]}


def mine_context(items: list[dict[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """What _my_conversations.html needs, for a page that includes it."""
    at = now or utcnow()
    return {"mine": [{**item, "ago": duration(_seconds(item["updated_at"], at))} for item in items]}


def queue_html(view: QueueView, *, oob: bool = False) -> str:
    """The same for every viewer with this filter (so one rendering can go to every socket)."""
    return render("_queue.html", **queue_context(view), oob=oob)


def mine_html(items: list[dict[str, Any]], *, oob: bool = False) -> str:
    return render("_my_conversations.html", **mine_context(items), oob=oob)


def _shown(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An item with what the template shows, worked out here: one lookup per value in the template."""
    since, due = parse_time(item["waiting_since"]) or now, parse_time(item["sla_due_at"]) or now
    left = int((due - now).total_seconds())
    return {
        **item,
        "href": f"/desk/conversations/{item['conversation_id']}",
        "name": item["customer"]["name"] or "Unnamed customer",
        "reason_code": item["reason"]["code"],
        "confidence": percent(item["reason"]["confidence"]),
        "waiting_text": duration(_seconds(since, now)),
        "sla_class": sla_class(since, due, now),
        "sla_text": f"due in {duration(left)}" if left > 0 else f"overdue {duration(-left)}",
    }


def _seconds(since: str | datetime | None, now: datetime) -> int:
    moment = parse_time(since)
    return 0 if moment is None else int((now - moment).total_seconds())


def sla_class(since: datetime, due: datetime, now: datetime) -> str:
    if now >= due:
        return "sla-breached"
    return "sla-ok" if (due - now) > (due - since) * SLA_OK_SHARE else "sla-warn"


def duration(seconds: int) -> str:
    """ "45s", "4m 05s", "2h 07m", "3d 04h": precise while it matters, coarse when it no longer does."""
    seconds = max(0, seconds)
    if seconds < MINUTE_S:
        return f"{seconds}s"
    if seconds < HOUR_S:
        return f"{seconds // MINUTE_S}m {seconds % MINUTE_S:02d}s"
    if seconds < DAY_S:
        return f"{seconds // HOUR_S}h {seconds % HOUR_S // MINUTE_S:02d}m"
    return f"{seconds // DAY_S}d {seconds % DAY_S // HOUR_S:02d}h"


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


class MineLoader:
    """Every "my conversations" asked for in the same turn of the event loop, read in one query.

    After a queue change every open desk page asks for its user's list at once (they all wake up when the shared
    queue rendering is ready): one read for all of them instead of one per page, each page still getting only its own
    user's conversations.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._waiting: dict[str, list[asyncio.Future[list[dict[str, Any]]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, user_id: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.setdefault(user_id, []).append(future)
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.ensure_future(self._read(batch))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _read(self, batch: dict[str, list[asyncio.Future[list[dict[str, Any]]]]]) -> None:
        try:
            held = await self.rt.call(conversations_held_by, list(batch))
        except Exception as exc:  # every waiting page gets the failure, as if it had read alone
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for user_id, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(held.get(user_id, []))


_mine_loaders: WeakKeyDictionary[Runtime, MineLoader] = WeakKeyDictionary()


def _mine_loader(rt: Runtime) -> MineLoader:
    if rt not in _mine_loaders:
        _mine_loaders[rt] = MineLoader(rt)
    return _mine_loaders[rt]


def renderings_for(rt: Runtime) -> QueueRenderings:
    if rt not in _renderings:
        _renderings[rt] = QueueRenderings()
    return _renderings[rt]
