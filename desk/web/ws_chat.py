"""The customer socket `/ws/chat` (CONTRACT.md section 7).

Delivery is by `seq`: the socket keeps `cursor`, the last seq sent, and only ever sends `cursor + 1`; a live
message further ahead means we missed some (a lagging queue, a bus blip), so the gap is read from the database.
Live delivery starts once the client has said where it is (its first frame, normally `resume`), or after
HELLO_WAIT_S for clients that never resume; so a resume never races a live message into a duplicate.

Status frames go out on connect and on each change of this conversation. Two changes are not events of it: the
queue moving ahead of a waiting customer (re-read every POSITION_REFRESH_S while queued, sent only when the place
changed), and a customer's message reopening a closed conversation (the status is re-read when a post finds it
changed).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from desk.actions import conversations
from desk.actions.learning import rate
from desk.actions.reads import (
    assignee_of,
    conversation_for_customer_token,
    customer_status,
    messages_after,
    queued_status,
)
from desk.auth.principals import CustomerPrincipal
from desk.errors import DeskError
from desk.realtime.pump import Item, Subscription
from desk.runtime import Runtime
from desk.schemas import MAX_TEXT
from desk.store.events import EventRecord
from desk.store.shapes import message_json
from desk.web.bodies import error_fields
from desk.web.sockets import CLOSE_POLICY, send_error, send_json, serve

log = logging.getLogger(__name__)

HELLO_WAIT_S = 0.5
POSITION_REFRESH_S = 10.0
STATUS_EVENTS = frozenset(
    {
        "handoff.created",
        "handoff.claimed",
        "handoff.assigned",
        "handoff.transferred",
        "control.returned",
        "conversation.resolved",
        "conversation.abandoned",
        "conversation.deferred",
        "callback.scheduled",
        "handoff.requeued",
    }
)

QUEUED_EVENTS = frozenset({"handoff.created", "handoff.requeued"})


class ChatMessage(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    client_id: str | None = Field(default=None, min_length=1, max_length=100)


class Resume(BaseModel):
    after_seq: int = Field(ge=0)


class Rating(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class ChatSession:
    def __init__(self, ws: WebSocket, rt: Runtime, conversation_id: str, last_seq: int) -> None:
        self.ws = ws
        self.rt = rt
        self.conversation_id = conversation_id
        self.customer = CustomerPrincipal(conversation_id)
        self.cursor = last_seq
        self.hello = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.status: dict[str, Any] = {}  # the last status frame sent

    async def send_status(self, *, only_if_changed: bool = False, frame: dict[str, Any] | None = None) -> None:
        if frame is None:
            rate = await self.rt.claim_rate.current()
            frame = await self.rt.call(customer_status, self.conversation_id, claim_rate=rate)
        if only_if_changed and frame == self.status:
            return
        self.status = frame
        await send_json(self.ws, frame)

    async def send_from_db(self) -> None:
        while True:
            rows = await self.rt.call(messages_after, self.conversation_id, self.cursor)
            for message in rows:
                await self.send_message(message_json(message))
            if len(rows) < 500:
                return

    async def send_message(self, message: dict[str, Any]) -> None:
        if message["seq"] != self.cursor + 1:
            return
        frame = {"type": "message", **{k: message[k] for k in ("seq", "author", "text", "at", "client_id")}}
        await send_json(self.ws, frame)
        self.cursor = message["seq"]

    async def on_event(self, event: EventRecord) -> None:
        if event.type == "message.created":
            message = event.data["message"]
            if message["seq"] > self.cursor + 1:
                await self.send_from_db()
            await self.send_message(message)
        if event.type in QUEUED_EVENTS and isinstance(event.data.get("position"), int):
            # The place in the queue is in the event: no read for it (a burst of handoffs sends many of these).
            await self.send_status(frame=queued_status(event.data["position"], await self.rt.claim_rate.current()))
        elif event.type in STATUS_EVENTS:
            await self.send_status()

    async def next_item(self, subscription: Subscription) -> Item | None:
        """The next item for the socket; None when it is time to look at the queue position again."""
        if self.status.get("status") != "queued":
            return await subscription.queue.get()
        try:
            return await asyncio.wait_for(subscription.queue.get(), POSITION_REFRESH_S)
        except TimeoutError:
            return None

    async def pump_out(self, subscription: Subscription) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self.hello.wait(), HELLO_WAIT_S)
        async with self.send_lock:
            await self.send_from_db()
        while True:
            item = await self.next_item(subscription)
            async with self.send_lock:
                if item is None:
                    await self.send_status(only_if_changed=True)
                elif isinstance(item, EventRecord):
                    await self.on_event(item)
                elif item.get("type") == "_lagged":
                    subscription.lagged = False
                    await self.send_from_db()
                else:
                    await send_json(self.ws, {"type": "typing", "author": item["author"]})

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        try:
            if kind == "resume":
                resume = Resume.model_validate(frame)
                async with self.send_lock:
                    self.cursor = resume.after_seq
                    if self.hello.is_set():
                        await self.send_from_db()
                self.hello.set()
            elif kind == "message":
                self.hello.set()
                await self.post(ChatMessage.model_validate(frame))
            elif kind == "typing":
                self.hello.set()
                assignee_id = await self.rt.call(assignee_of, self.conversation_id)
                await self.rt.transient(
                    {
                        "conversation_id": self.conversation_id,
                        "to": "staff",
                        "assignee_id": assignee_id,
                        "author": {"kind": "customer"},
                    }
                )
            elif kind == "rating":
                self.hello.set()
                rating = Rating.model_validate(frame)
                rated = await self.rt.call(
                    rate, conversation_id=self.conversation_id, score=rating.score, comment=rating.comment
                )
                if not rated:
                    await send_error(self.ws, "nothing_to_rate", "Nobody from the team has helped you here yet.")
            else:
                await send_error(self.ws, "unknown_frame", f"Unknown frame type {kind!r}.")
        except ValidationError as exc:
            fields = ", ".join(f"{k}: {v}" for k, v in error_fields(exc).items())
            await send_error(self.ws, "validation_error", f"Invalid {kind} frame ({fields}).")
        except DeskError as exc:
            await send_error(self.ws, exc.code, exc.message)

    async def post(self, message: ChatMessage) -> None:
        posted = await self.rt.call(
            conversations.post_message,
            conversation_id=self.conversation_id,
            author=self.customer,
            text=message.text,
            client_id=message.client_id,
        )
        await send_json(self.ws, {"type": "ack", "client_id": message.client_id, "seq": posted.message.seq})
        if posted.status != self.status.get("status"):  # reopened by this message: no event says so
            async with self.send_lock:
                await self.send_status(only_if_changed=True)
        if posted.created and posted.status in ("bot", "deferred"):  # the AI's turn, or a deferral's question
            self.rt.turns.schedule(self.conversation_id, message_json(posted.message))


async def chat_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    token = ws.query_params.get("token", "")
    conversation = await rt.call(conversation_for_customer_token, token) if token else None
    if conversation is None:
        await ws.close(code=CLOSE_POLICY)
        return
    await ws.accept()
    session = ChatSession(ws, rt, conversation.id, conversation.last_seq)
    after = ws.query_params.get("after_seq")
    if after is not None and after.isdigit():
        session.cursor = int(after)
        session.hello.set()
    conversation_id = conversation.id
    subscription = rt.pump.subscribe(
        Subscription(
            accepts=lambda e: e.conversation_id == conversation_id and e.for_customer,
            accepts_transient=lambda f: f.get("conversation_id") == conversation_id and f.get("to") == "customer",
        )
    )

    async def greet() -> None:
        async with session.send_lock:
            await session.send_status()

    await serve(ws, rt.pump, subscription, session, greet)


ROUTES = [WebSocketRoute("/ws/chat", chat_socket)]
