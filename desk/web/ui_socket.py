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
- The floor page (`?page=floor`, supervisors and admins) gets the floor re-rendered on queue events and when who is
  online changes; like the queue, one rendering per change serves every floor page of the process.
- Presence: each socket is an open page in `rt.presence`; the conversation page gets "also viewing" avatars of the
  colleagues who have it open too, live.
- Typing, both ways: the customer's typing shows under the timeline; the page sends `{"type": "typing",
  "conversation_id"}` while its user, who holds the conversation, types, and the customer sees it.
- Signing out (that session) or deactivation (the user) closes the socket with CLOSE_SIGNED_OUT at once, in every
  process; a change to the user's role or skills closes it with 1012, and the page reconnects with its new rights.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import suppress
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from desk.actions.sessions import session_key
from desk.auth.principals import StaffPrincipal
from desk.config import MAX_WS_FRAME_BYTES
from desk.domain.states import is_staff_manager
from desk.errors import NotFound
from desk.realtime.presence import Page
from desk.realtime.pump import Subscription
from desk.runtime import Runtime
from desk.store.events import EventRecord
from desk.web.auth import session_staff
from desk.web.components import conversation as c
from desk.web.components import floor
from desk.web.components import queue as q
from desk.web.renderings import floor_renderings_for
from desk.web.security import same_origin, session_csrf, session_id
from desk.web.sockets import ACCOUNT_EVENTS, CLOSE_INTERNAL, CLOSE_POLICY, CLOSE_TOO_BIG
from desk.web.templating import render
from desk.web.ws_staff import account_event_of, closes, receives

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
        "conversation.deferred",
        "handoff.requeued",
    }
)
STATUS_EVENTS = QUEUE_EVENTS
# The floor also shows the AI providers' health: an outage (or its end) re-renders it even when no queue moved.
FLOOR_EVENTS = QUEUE_EVENTS | {"ai.breaker_opened", "ai.breaker_closed"}
BATCH_MAX = 500
MAX_ID_CHARS = 64
TYPING_MIN_INTERVAL_S = 1.0
TYPING_SHOWN_MS = 6000


class UiSession:
    def __init__(self, ws: WebSocket, rt: Runtime, user: StaffPrincipal, page: str, watching: str | None) -> None:
        self.ws = ws
        self.rt = rt
        self.user = user
        self.csrf = session_csrf(ws)
        self.session = session_key(session_id(ws)) if session_id(ws) else ""
        self.page = page
        self.watching = watching
        self.skill = q.skill_filter(ws.query_params.get("skill"))
        self.held: set[str] = set()  # the conversations "my conversations" shows
        self.last_seq = 0
        self.note_ids: set[str] = set()
        self.can: dict[str, bool] = {}
        self.customer_name = "The customer"
        self.last_typing = 0.0

    # --- what this socket receives ----------------------------------------------------------------------------

    def accepts(self, event: EventRecord) -> bool:
        return receives(self.user, event) or account_event_of(self.user, event)

    def accepts_transient(self, frame: dict[str, Any]) -> bool:
        """The customer typing in the conversation this page shows."""
        watching = self.watching
        return watching is not None and frame.get("to") == "staff" and frame.get("conversation_id") == watching

    # --- sending ------------------------------------------------------------------------------------------------

    async def run(self, subscription: Subscription) -> int:
        """Push fragments until the socket must close; returns the close code."""
        await self.snapshot()
        while True:
            batch = [await subscription.queue.get()]
            while len(batch) < BATCH_MAX and not subscription.queue.empty():
                batch.append(subscription.queue.get_nowait())
            events = [item for item in batch if isinstance(item, EventRecord)]
            for event in events:
                if event.type in ACCOUNT_EVENTS and (code := closes(event, self.session)) is not None:
                    return code
            frames = [item for item in batch if isinstance(item, dict)]
            if any(frame.get("type") == "_lagged" for frame in frames):
                subscription.lagged = False
                await self.snapshot()
                continue
            await self.on_batch(events, frames)

    @property
    def shows_queue(self) -> bool:
        """The desk page holds the queue and "my conversations"; a conversation page and the floor do not."""
        return self.page == "desk"

    async def snapshot(self) -> None:
        parts: list[str] = []
        if self.shows_queue:
            items, mine = await q.load_queue(self.rt, self.user, self.skill), await q.load_mine(self.rt, self.user)
            self.held = q.held_ids(mine)
            parts += [q.queue_html(items, oob=True), q.mine_html(mine, oob=True)]
        if self.page == "floor":
            parts.append(await self.floor_html(("snapshot", id(self))))
        if self.watching is not None:
            parts += await self.conversation_parts(first=not self.can)
            parts.append(self.viewers_html())
        await self.ws.send_text("".join(parts))

    async def conversation_parts(self, *, first: bool = False) -> list[str]:
        assert self.watching is not None
        view = await c.load_view_or_outline(self.rt, self.watching, self.user, self.csrf)
        self.last_seq, self.note_ids = view.last_seq, view.note_ids
        customer = view.conv.get("customer") or {}
        self.customer_name = customer.get("name") or "The customer"
        parts = [c.status_html(view, oob=True), c.timeline_html(view, oob=True)]
        if view.visible:  # a new handoff brings a new bundle; usage badges change as recommendations are used
            parts.append(c.bundle_html(view, oob=True))
        # The composer holds what the agent is typing: replace it only when what they may do changed.
        if not first and view.can != self.can:
            parts.append(c.composer_html(view, oob=True))
        self.can = view.can
        return parts

    async def on_batch(self, events: list[EventRecord], frames: list[dict[str, Any]]) -> None:
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
        # Re-read "my conversations" only when these events can change it: one read per open page per change
        # would cost more than the shared queue rendering.
        if self.shows_queue and q.mine_changed(self.user.id, self.held, events):
            mine = await q.load_mine(self.rt, self.user)
            self.held = q.held_ids(mine)
            parts.append(q.mine_html(mine, oob=True))
        if self.page == "floor":
            floor_event = max((e.id for e in events if e.type in FLOOR_EVENTS), default=None)
            online_changed = any(f.get("type") == "_presence" and f.get("online") for f in frames)
            if floor_event is not None or online_changed:
                key = ("event", floor_event) if floor_event else ("presence", self.rt.presence.version)
                parts.append(await self.floor_html(key))
        # A status change re-renders the whole timeline, which includes whatever was to be appended.
        parts += await self.conversation_parts() if status_changed else appended
        if self.watching is not None:
            if any(f.get("type") == "_presence" and self.watching in f.get("conversations", ()) for f in frames):
                parts.append(self.viewers_html())
            if any(f.get("to") == "staff" for f in frames):
                parts.append(self.typing_html(self.customer_name))
        if parts:
            await self.ws.send_text("".join(parts))

    def appended(self, event: EventRecord) -> list[str]:
        assert self.watching is not None
        if event.type == "message.created":
            message: dict[str, Any] = event.data["message"]
            if int(message["seq"]) <= self.last_seq:
                return []
            self.last_seq = int(message["seq"])
            return [c.appended_html(self.watching, message=message), self.typing_html(None)]
        if event.type == "note.created":
            note: dict[str, Any] = event.data["note"]
            if note["id"] in self.note_ids:
                return []
            self.note_ids.add(note["id"])
            return [c.appended_html(self.watching, note=note)]
        return []

    async def floor_html(self, key: tuple[str, object]) -> str:
        async def make() -> str:
            return floor.floor_html(await floor.load_floor(self.rt, self.user), oob=True)

        return await floor_renderings_for(self.rt).get(key, make)

    def viewers_html(self) -> str:
        assert self.watching is not None
        others = [p for p in self.rt.presence.viewers(self.watching) if p.user_id != self.user.id]
        viewers = [{"name": p.name, "initials": initials(p.name), "holds": False} for p in others]
        return render("_viewers.html", conversation_id=self.watching, viewers=viewers, oob=True)

    def typing_html(self, name: str | None) -> str:
        assert self.watching is not None
        return render("_typing.html", conversation_id=self.watching, who=name, expires_ms=TYPING_SHOWN_MS, oob=True)

    # --- receiving ----------------------------------------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> None:
        """Client frames: only typing. Anything else is ignored (htmx-ext-ws sends nothing else unasked)."""
        if frame.get("type") != "typing" or frame.get("conversation_id") != self.watching or not self.can.get("reply"):
            return
        now = time.monotonic()
        if now - self.last_typing < TYPING_MIN_INTERVAL_S:
            return
        self.last_typing = now
        author = {"kind": "agent", "name": self.user.name}
        await self.rt.transient({"conversation_id": self.watching, "to": "customer", "author": author})


def initials(name: str) -> str:
    letters = [part[0] for part in name.split() if part and part[0].isalnum()]
    return ("".join(letters[:1] + letters[-1:]) if len(letters) > 1 else "".join(letters) or "?").upper()


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


async def _read_frames(ws: WebSocket, session: UiSession) -> int | None:
    """Read client frames until the client leaves. Returns a close code to send, or None when it disconnected."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        data: str | bytes = message.get("text") or message.get("bytes") or b""
        if len(data.encode() if isinstance(data, str) else data) > MAX_WS_FRAME_BYTES:
            return CLOSE_TOO_BIG
        try:
            frame = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(frame, dict):
            await session.handle(frame)


def _page_kind(ws: WebSocket, user: StaffPrincipal, watching: str | None) -> str:
    if watching is not None:
        return "conversation"
    if ws.query_params.get("page") == "floor" and is_staff_manager(user.role):
        return "floor"
    return "desk"


async def ui_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    user = await session_staff(ws) if same_origin(ws, rt.settings.base_url, rt.settings.allowed_origins) else None
    if user is None:
        await ws.close(code=CLOSE_POLICY)
        return
    await ws.accept()
    watching = await _watched(rt, ws, user)
    session = UiSession(ws, rt, user, _page_kind(ws, user, watching), watching)
    subscription = rt.pump.subscribe(Subscription(accepts=session.accepts, accepts_transient=session.accepts_transient))
    page = Page(id=uuid.uuid4().hex, user_id=user.id, name=user.name, conversation_id=watching)

    def on_presence(conversations: set[str], online: bool) -> None:
        subscription.offer({"type": "_presence", "conversations": conversations, "online": online})

    rt.presence.listen(on_presence)
    await rt.presence.opened(page)
    sender = asyncio.create_task(session.run(subscription))
    reader = asyncio.create_task(_read_frames(ws, session))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        failure = sender.exception() if sender.done() and not sender.cancelled() else None
        if sender.done() and failure is None:
            await ws.close(code=sender.result())
        elif failure is not None and not isinstance(failure, WebSocketDisconnect):
            # The page's socket reconnects by itself and starts again from a snapshot.
            log.warning("ui socket of %s stopped: %r", user.id, failure)
            with suppress(Exception):
                await ws.close(code=CLOSE_INTERNAL)
        elif reader.done() and (code := reader.result()) is not None:
            await ws.close(code=code)
    finally:
        rt.presence.unlisten(on_presence)
        rt.pump.unsubscribe(subscription)
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with suppress(asyncio.CancelledError, Exception):
                await task
        await rt.presence.closed(page.id)


ROUTES = [WebSocketRoute("/ws/ui", ui_socket)]
