"""The staff socket `/ws/staff` (CONTRACT.md section 5): every event the caller may see, live, in id order.

`resume` replays from the database what the caller missed after a given event id, then live delivery goes on
from there; ids at or below the last one sent are skipped, so nothing arrives twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from desk.actions.reads import read_conversation
from desk.actions.sessions import session_key
from desk.actions.staff import staff_for_token
from desk.auth.principals import StaffPrincipal
from desk.domain import permissions
from desk.errors import DeskError
from desk.realtime.pump import Subscription
from desk.runtime import Runtime
from desk.store.events import EventRecord, fetch_after
from desk.web.auth import session_staff
from desk.web.security import same_origin, session_id
from desk.web.sockets import (
    ACCOUNT_EVENTS,
    CLOSE_POLICY,
    CLOSE_RECONNECT,
    CLOSE_SIGNED_OUT,
    send_error,
    send_json,
    serve,
)

REPLAY_BATCH = 1000


class Resume(BaseModel):
    after: int = Field(ge=0)


class Typing(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=64)


def receives(user: StaffPrincipal, event: EventRecord) -> bool:
    return permissions.staff_receives(
        role=user.role,
        user_id=user.id,
        for_staff=event.for_staff,
        queue_scope=event.queue_scope,
        agent_id=event.agent_id,
    )


def receives_transient(user: StaffPrincipal, frame: dict[str, Any]) -> bool:
    if frame.get("to") != "staff":
        return False
    return permissions.staff_receives(
        role=user.role, user_id=user.id, for_staff=True, queue_scope=False, agent_id=frame.get("assignee_id")
    )


def closes(event: EventRecord, session: str) -> int | None:
    """The close code when an account event ends this socket: signed out (this session, or everywhere on
    deactivation), or rights changed (reconnect to get the new ones). The subscription only lets through the
    user's own account events."""
    if event.type == "staff.signed_out" and event.data.get("session") in (None, session):
        return CLOSE_SIGNED_OUT
    if event.type == "staff.changed":
        return CLOSE_RECONNECT
    return None


def account_event_of(user: StaffPrincipal, event: EventRecord) -> bool:
    return event.type in ACCOUNT_EVENTS and event.data.get("user_id") == user.id


class StaffSession:
    def __init__(self, ws: WebSocket, rt: Runtime, user: StaffPrincipal, session: str = "") -> None:
        self.ws = ws
        self.rt = rt
        self.user = user
        self.session = session  # the server-side session key when the socket came in with a cookie
        self.last_sent = rt.pump.cursor
        self.lock = asyncio.Lock()

    async def replay(self, after: int) -> None:
        cursor = after
        while True:
            records = await self.rt.call(_fetch, cursor)
            for record in records:
                if receives(self.user, record):
                    await self.ws.send_text(record.staff_frame)
                cursor = record.id
            if len(records) < REPLAY_BATCH:
                break
        self.last_sent = max(self.last_sent, cursor)

    async def pump_out(self, subscription: Subscription) -> None:
        while True:
            item = await subscription.queue.get()
            async with self.lock:
                if isinstance(item, EventRecord) and (code := closes(item, self.session)) is not None:
                    await self.ws.close(code=code)
                    return
                if isinstance(item, EventRecord):
                    if item.id > self.last_sent:
                        await self.ws.send_text(item.staff_frame)
                        self.last_sent = item.id
                elif item.get("type") == "_lagged":
                    subscription.lagged = False
                    await self.replay(self.last_sent)
                else:
                    await send_json(
                        self.ws,
                        {
                            "type": "typing",
                            "conversation_id": item["conversation_id"],
                            "author": item["author"],
                        },
                    )

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        try:
            if kind == "resume":
                resume = Resume.model_validate(frame)
                async with self.lock:
                    self.last_sent = resume.after
                    await self.replay(resume.after)
            elif kind == "typing":
                typing = Typing.model_validate(frame)
                conversation = await self.rt.call(read_conversation, typing.conversation_id, self.user)
                if conversation["assignee"] and conversation["assignee"]["id"] == self.user.id:
                    await self.rt.transient(
                        {
                            "conversation_id": typing.conversation_id,
                            "to": "customer",
                            "author": {"kind": "agent", "name": self.user.name},
                        }
                    )
            elif kind == "ping":
                await send_json(self.ws, {"type": "pong"})
            else:
                await send_error(self.ws, "unknown_frame", f"Unknown frame type {kind!r}.")
        except ValidationError:
            await send_error(self.ws, "validation_error", f"Invalid {kind} frame.")
        except DeskError as exc:
            await send_error(self.ws, exc.code, exc.message)


def _fetch(db: Any, after: int) -> list[EventRecord]:
    with db.read() as session:
        return fetch_after(session, after, REPLAY_BATCH)


async def authenticate(ws: WebSocket) -> tuple[StaffPrincipal | None, str]:
    """The staff member, and the server-side session key when they came in with a cookie."""
    rt: Runtime = ws.app.state.runtime
    token = ws.query_params.get("token")
    if token:
        return await rt.call(staff_for_token, token), ""
    # A cookie rides along with any page's socket: only this desk's own pages may use it (no cross-site hijack).
    if not same_origin(ws, rt.settings.base_url, rt.settings.allowed_origins):
        return None, ""
    sid = session_id(ws)
    return await session_staff(ws), session_key(sid) if sid else ""


async def staff_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    user, key = await authenticate(ws)
    if user is None:
        await ws.close(code=CLOSE_POLICY)
        return
    await ws.accept()
    session = StaffSession(ws, rt, user, key)
    subscription = rt.pump.subscribe(
        Subscription(
            accepts=lambda e: receives(user, e) or account_event_of(user, e),
            accepts_transient=lambda f: receives_transient(user, f),
        )
    )
    await serve(ws, rt.pump, subscription, session)


ROUTES = [WebSocketRoute("/ws/staff", staff_socket)]
