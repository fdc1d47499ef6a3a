"""The demo AI as a webhook receiver: a Starlette app that Desk calls and that calls Desk back over HTTP.

It uses nothing but the public contract (CONTRACT.md sections 4 and 6): signed turns are answered with a reply
or an escalation built by `brain.respond`; signed event deliveries are acknowledged at once, and after
`control.returned` the AI posts its resume message through the integration API with its bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from desk.demo_ai import brain
from desk.demo_ai.handback import RETRY_DELAYS_S, SeenEvents, post_resume
from desk.demo_ai.signatures import verify

__all__ = ["build_demo_ai"]

MAX_BODY_BYTES = 1024 * 1024


def build_demo_ai(
    desk_url: str,
    token: str,
    webhook_secret: str,
    *,
    retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
) -> Starlette:
    """The demo AI's app, with `POST /webhook`. `desk_url` is where Desk's JSON API is reachable."""
    seen = SeenEvents()

    async def webhook(request: Request) -> JSONResponse:
        raw = await _read_body(request)
        if raw is None:
            return _error(413, "body_too_large", "The body is over 1 MiB.")
        headers = request.headers
        if not verify(webhook_secret, headers.get("desk-timestamp"), headers.get("desk-signature"), raw):
            return _error(401, "unauthorized", "Missing, stale or invalid Desk-Signature.")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return _error(400, "invalid_json", "The body is not valid UTF-8 JSON.")
        if not isinstance(body, dict):
            return _error(422, "validation_error", "The body must be a JSON object.", {"": "not an object"})
        if body.get("type") == "turn":
            return _turn(body)
        return _event(body, headers.get("desk-event-id"))

    def _event(body: Mapping[str, Any], header_id: str | None) -> JSONResponse:
        event_id = body.get("id", header_id)
        if not isinstance(event_id, (str, int)) or isinstance(event_id, bool):
            return _error(422, "validation_error", "An event needs an id.", {"id": "required"})
        event_id = str(event_id)
        if not seen.add(event_id):
            return JSONResponse({"ok": True, "duplicate": True})
        data = body.get("data")
        conversation_id = body.get("conversation_id")
        if body.get("type") != "control.returned" or not isinstance(conversation_id, str):
            return JSONResponse({"ok": True, "duplicate": False})
        task = BackgroundTask(
            post_resume,
            desk_url=desk_url,
            token=token,
            event_id=event_id,
            conversation_id=conversation_id,
            data=data if isinstance(data, Mapping) else {},
            seen=seen,
            retry_delays_s=retry_delays_s,
        )
        return JSONResponse({"ok": True, "duplicate": False}, background=task)

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it grows past `MAX_BODY_BYTES` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _turn(body: Mapping[str, Any]) -> JSONResponse:
    message = body.get("message")
    fields: dict[str, str] = {}
    if not isinstance(body.get("conversation_id"), str):
        fields["conversation_id"] = "required string"
    if not isinstance(message, Mapping) or not isinstance(message.get("text"), str):
        fields["message.text"] = "required string"
    history = body.get("history", [])
    if not isinstance(history, list):
        fields["history"] = "must be a list"
    if fields or not isinstance(message, Mapping):
        return _error(422, "validation_error", "A turn needs conversation_id, message.text and history.", fields)
    reply = brain.respond(message["text"], _lines(history, message.get("seq"), message["text"]))
    return JSONResponse(
        {
            "reply": reply.text,
            "confidence": reply.confidence,
            "escalate": reply.escalation.bundle() if reply.escalation else None,
        }
    )


def _lines(history: Sequence[Any], seq: object, text: str) -> list[brain.Line]:
    """The conversation before the current message, whether or not Desk's history already includes it."""
    lines: list[brain.Line] = []
    for item in history:
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            continue
        item_seq = item.get("seq")
        if isinstance(seq, int) and isinstance(item_seq, int) and item_seq >= seq:
            continue
        lines.append(brain.Line(_role(item), item["text"]))
    if not isinstance(seq, int) and lines and lines[-1] == brain.Line("customer", text):
        lines.pop()
    return lines


def _role(item: Mapping[str, Any]) -> brain.Role:
    author = item.get("author", item.get("role"))
    kind = author.get("kind") if isinstance(author, Mapping) else author
    return kind if kind in ("customer", "ai", "agent", "system") else "system"


def _error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return JSONResponse({"error": error}, status_code=status)
