"""What the two sockets share: frame size limit, JSON frames, error frames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from desk.config import MAX_WS_FRAME_BYTES
from desk.realtime.pump import EventPump, Subscription
from desk.web.bodies import nul_paths

CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_RECONNECT = 1012  # "service restart": clients (htmx-ext-ws too) reconnect, and re-authenticate
CLOSE_SIGNED_OUT = 4401  # the session or account ended; static/desk.js sends the page to the login form
# Events about a staff account, for its own sockets only (written with no API audience).
ACCOUNT_EVENTS = frozenset({"staff.signed_out", "staff.changed"})


class FrameTooBig(Exception):
    pass


async def receive_frame(ws: WebSocket) -> dict[str, Any] | None:
    """The next client frame as a JSON object; None for a malformed one (an error frame was sent)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw: str | bytes | None = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    if size > MAX_WS_FRAME_BYTES:
        raise FrameTooBig
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        await send_error(ws, "invalid_json", "Frames must be JSON objects.")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        await send_error(ws, "invalid_frame", "Frames must be JSON objects with a string `type`.")
        return None
    if nul_paths(data):
        await send_error(ws, "validation_error", "Text must not contain NUL characters.")
        return None
    return data


async def send_error(ws: WebSocket, code: str, message: str) -> None:
    await ws.send_text(json.dumps({"type": "error", "code": code, "message": message}))


async def send_json(ws: WebSocket, frame: dict[str, Any]) -> None:
    await ws.send_text(json.dumps(frame, separators=(",", ":")))


class FrameSession(Protocol):
    async def pump_out(self, subscription: Subscription) -> None: ...

    async def handle(self, frame: dict[str, Any]) -> None: ...


async def serve(
    ws: WebSocket,
    pump: EventPump,
    subscription: Subscription,
    session: FrameSession,
    greet: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run an accepted JSON socket: the session's sender drains its subscription while client frames are read
    here; an oversized frame closes with 1009. Always unsubscribes."""
    sender = asyncio.create_task(session.pump_out(subscription))
    try:
        if greet is not None:
            await greet()
        while not sender.done():
            frame = await receive_frame(ws)
            if frame is not None:
                await session.handle(frame)
    except FrameTooBig:
        await ws.close(code=CLOSE_TOO_BIG)
    except WebSocketDisconnect:
        pass
    finally:
        pump.unsubscribe(subscription)
        sender.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await sender
