"""The desk's live socket `/ws/ui`: server-rendered components pushed out of band to htmx-ext-ws.

The page connects with its session cookie (the Origin, when sent, must be this desk). The socket subscribes to the
event pump with the staff socket's visibility rules (`desk.web.ws_staff.receives`), so it only ever reacts to
events its user may see, and every component it pushes is re-read with that user's rights.

- On connect, and after falling behind the pump, it pushes a snapshot of the page's components (queue, "my
  conversations", and the viewed conversation's status and timeline): a reconnecting page catches up without
  replaying events.
- Queue-affecting events re-render the queue, once per event however many sockets receive it (the queue is the
  same for every viewer), and the viewer's "my conversations".
- Messages and notes of the viewed conversation (`?conversation=<id>`) are appended to its timeline, each at most
  once: the socket remembers the last `seq` and the note ids it has shown.
- Status changes of the viewed conversation re-render its status and timeline (and the composer when what the
  viewer may do changed); one someone else took shows who took it, and nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from desk.auth.principals import StaffPrincipal
from desk.config import MAX_WS_FRAME_BYTES
from desk.errors import NotFound
from desk.realtime.pump import Subscription
from desk.runtime import Runtime
from desk.store.events import EventRecord
from desk.web.auth import session_staff
from desk.web.components import conversation as c
from desk.web.components import queue as q
from desk.web.security import same_origin, session_csrf
from desk.web.sockets import CLOSE_POLICY, CLOSE_TOO_BIG
from desk.web.ws_staff import receives

log = logging.getLogger(__name__)

QUEUE_EVENTS = frozenset(
    {
        "handoff.created",
        "handoff.claimed",
        "handoff.assigned",
        "handoff.transferred",
        "conversation.resolved",
        "conversation.abandoned",
        "control.returned",
        "conversation.deferred",  # not written yet; a deferral from the queue will take the item out
    }
)
STATUS_EVENTS = QUEUE_EVENTS
BATCH_MAX = 500
MAX_ID_CHARS = 64
MAX_SKILL_CHARS = 64
CLOSE_INTERNAL = 1011


class UiSession:
    def __init__(self, ws: WebSocket, rt: Runtime, user: StaffPrincipal, watching: str | None) -> None:
        self.ws = ws
        self.rt = rt
        self.user = user
        self.csrf = session_csrf(ws)
        self.watching = watching
        self.skill = _skill(ws.query_params.get("skill"))
        self.last_seq = 0
        self.note_ids: set[str] = set()
        self.can: dict[str, bool] = {}

    async def run(self, subscription: Subscription) -> None:
        await self.snapshot()
        while True:
            batch = [await subscription.queue.get()]
            while len(batch) < BATCH_MAX and not subscription.queue.empty():
                batch.append(subscription.queue.get_nowait())
            if any(isinstance(item, dict) and item.get("type") == "_lagged" for item in batch):
                subscription.lagged = False
                await self.snapshot()
                continue
            await self.on_batch([item for item in batch if isinstance(item, EventRecord)])

    @property
    def shows_queue(self) -> bool:
        """The desk page holds the queue and "my conversations"; a conversation page holds neither."""
        return self.watching is None

    async def snapshot(self) -> None:
        parts: list[str] = []
        if self.shows_queue:
            items, mine = await q.load_queue(self.rt, self.user, self.skill), await q.load_mine(self.rt, self.user)
            parts += [q.queue_html(items, oob=True), q.mine_html(mine, oob=True)]
        if self.watching is not None:
            parts += await self.conversation_parts(first=not self.can)
        await self.ws.send_text("".join(parts))

    async def conversation_parts(self, *, first: bool = False) -> list[str]:
        assert self.watching is not None
        view = await c.load_view_or_outline(self.rt, self.watching, self.user, self.csrf)
        self.last_seq, self.note_ids = view.last_seq, view.note_ids
        parts = [c.status_html(view, oob=True), c.timeline_html(view, oob=True)]
        # The composer holds what the agent is typing: replace it only when what they may do changed.
        if not first and view.can != self.can:
            parts.append(c.composer_html(view, oob=True))
        self.can = view.can
        return parts

    async def on_batch(self, events: list[EventRecord]) -> None:
        queue_event = max((e.id for e in events if e.type in QUEUE_EVENTS), default=None)
        status_changed = False
        appended: list[str] = []
        for event in events:
            if self.watching is None or event.conversation_id != self.watching:
                continue
            status_changed = status_changed or event.type in STATUS_EVENTS
            appended += self.appended(event)
        parts: list[str] = []
        if queue_event is not None and self.shows_queue:
            parts.append(await q.renderings_for(self.rt).get(self.rt, self.user, queue_event, self.skill))
            parts.append(q.mine_html(await q.load_mine(self.rt, self.user), oob=True))
        # A status change re-renders the whole timeline, which includes whatever was to be appended.
        parts += await self.conversation_parts() if status_changed else appended
        if parts:
            await self.ws.send_text("".join(parts))

    def appended(self, event: EventRecord) -> list[str]:
        assert self.watching is not None
        if event.type == "message.created":
            message: dict[str, Any] = event.data["message"]
            if int(message["seq"]) <= self.last_seq:
                return []
            self.last_seq = int(message["seq"])
            return [c.appended_html(self.watching, message=message)]
        if event.type == "note.created":
            note: dict[str, Any] = event.data["note"]
            if note["id"] in self.note_ids:
                return []
            self.note_ids.add(note["id"])
            return [c.appended_html(self.watching, note=note)]
        return []


def _skill(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_SKILL_CHARS else None


async def _watched(rt: Runtime, ws: WebSocket, user: StaffPrincipal) -> str | None:
    """The conversation the page shows, if its viewer may see it (otherwise the socket says nothing about it)."""
    conversation_id = ws.query_params.get("conversation")
    if not conversation_id or len(conversation_id) > MAX_ID_CHARS:
        return None
    try:
        await c.load_view(rt, conversation_id, user, "")
    except NotFound:
        return None
    return conversation_id


async def _read_until_closed(ws: WebSocket) -> int | None:
    """htmx-ext-ws sends nothing unless asked to; read (and drop) frames until the client leaves.

    Returns a close code to send, or None when the client disconnected.
    """
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        data: str | bytes = message.get("text") or message.get("bytes") or b""
        if len(data.encode() if isinstance(data, str) else data) > MAX_WS_FRAME_BYTES:
            return CLOSE_TOO_BIG


async def ui_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    user = await session_staff(ws) if same_origin(ws, rt.settings.base_url, rt.settings.allowed_origins) else None
    if user is None:
        await ws.close(code=CLOSE_POLICY)
        return
    await ws.accept()
    session = UiSession(ws, rt, user, await _watched(rt, ws, user))
    subscription = rt.pump.subscribe(Subscription(accepts=lambda e: receives(user, e), accepts_transient=_no))
    sender = asyncio.create_task(session.run(subscription))
    reader = asyncio.create_task(_read_until_closed(ws))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        failure = sender.exception() if sender.done() and not sender.cancelled() else None
        if failure is not None and not isinstance(failure, WebSocketDisconnect):
            # The page's socket reconnects by itself and starts again from a snapshot.
            log.warning("ui socket of %s stopped: %r", user.id, failure)
            with suppress(Exception):
                await ws.close(code=CLOSE_INTERNAL)
        elif reader.done() and (code := reader.result()) is not None:
            await ws.close(code=code)
    finally:
        rt.pump.unsubscribe(subscription)
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with suppress(asyncio.CancelledError, Exception):
                await task


def _no(_frame: dict[str, Any]) -> bool:
    return False


ROUTES = [WebSocketRoute("/ws/ui", ui_socket)]
