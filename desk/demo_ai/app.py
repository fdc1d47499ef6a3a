"""The demo AI as a webhook receiver: a Starlette app that Desk calls and that calls Desk back over HTTP.

It uses nothing but the public contract (CONTRACT.md sections 4 and 6): signed turns are answered with a reply
or an escalation built by `brain.respond`; signed event deliveries are acknowledged at once, and after
`control.returned` the AI posts its resume message through the integration API with its bearer token.

It is two providers for Desk's fallback ladder: the primary at `/webhook` and a backup at `/backup/webhook`,
whose replies say they come from the backup. Both misbehave as the current mode says (desk/demo_ai/modes.py),
which a page at `/` and `/mode` switch while the demo runs. The mode touches turns only: event deliveries are
acknowledged in every mode, so the desk's webhooks keep working while its AI is down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from desk.demo_ai import brain
from desk.demo_ai.handback import RETRY_DELAYS_S, SeenEvents, post_resume
from desk.demo_ai.modes import BACKUP, EXPLANATIONS, MODES, PRIMARY, SLOW_S, Modes, Outcome
from desk.demo_ai.signatures import verify

__all__ = ["build_demo_ai"]

MAX_BODY_BYTES = 1024 * 1024
BACKUP_PREFIX = "(backup assistant) "
# The desk's pages forbid inline scripts and styles; this page has neither, and needs nothing but its forms.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def build_demo_ai(
    desk_url: str,
    token: str,
    webhook_secret: str,
    *,
    retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    modes: Modes | None = None,
    slow_s: float = SLOW_S,
) -> Starlette:
    """The demo AI's app. `desk_url` is where Desk's JSON API is reachable; `slow_s` is how long a slow turn takes."""
    seen = SeenEvents()
    current = modes if modes is not None else Modes()

    async def webhook(request: Request) -> Response:
        body = await _signed_json(request, webhook_secret)
        if isinstance(body, Response):
            return body
        if body.get("type") == "turn":
            return await _provider_turn(request, current.outcome(PRIMARY), body, "")
        return _event(body, request.headers.get("desk-event-id"))

    async def backup_webhook(request: Request) -> Response:
        body = await _signed_json(request, webhook_secret)
        if isinstance(body, Response):
            return body
        if body.get("type") != "turn":
            return _error(422, "validation_error", "The backup assistant answers turns only.", {"type": "turn"})
        return await _provider_turn(request, current.outcome(BACKUP), body, BACKUP_PREFIX)

    async def _provider_turn(request: Request, outcome: Outcome, body: Mapping[str, Any], prefix: str) -> Response:
        if outcome == "unavailable":
            return _error(503, "unavailable", f"The demo AI is {current.mode} (demo mode): no answer this time.")
        if outcome == "slow":
            await _pause(request, slow_s)
        return _turn(body, prefix)

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

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(current.mode, _root(request)), headers=_PAGE_HEADERS)

    async def get_mode(request: Request) -> JSONResponse:
        return JSONResponse({"mode": current.mode})

    async def post_mode(request: Request) -> Response:
        if not _same_origin(request.headers):
            return _error(403, "forbidden", "Switch the mode from the demo AI's own page.")
        raw = await _read_body(request)
        if raw is None:
            return _error(413, "body_too_large", "The body is over 1 MiB.")
        form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        mode = _form_mode(raw) if form else _json_mode(raw)
        if isinstance(mode, Response):
            return mode
        if mode not in MODES:
            return _error(422, "validation_error", "Unknown demo AI mode.", {"mode": "one of " + ", ".join(MODES)})
        current.switch(mode)
        if form:
            return RedirectResponse(f"{_root(request)}/", status_code=303)
        return JSONResponse({"mode": mode})

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/mode", get_mode, methods=["GET"]),
            Route("/mode", post_mode, methods=["POST"]),
            Route("/webhook", webhook, methods=["POST"]),
            Route("/backup/webhook", backup_webhook, methods=["POST"]),
        ]
    )


async def _signed_json(request: Request, secret: str) -> dict[str, Any] | Response:
    """The body of a signed delivery as a JSON object, or the error answer."""
    raw = await _read_body(request)
    if raw is None:
        return _error(413, "body_too_large", "The body is over 1 MiB.")
    headers = request.headers
    if not verify(secret, headers.get("desk-timestamp"), headers.get("desk-signature"), raw):
        return _error(401, "unauthorized", "Missing, stale or invalid Desk-Signature.")
    return _json_object(raw)


def _json_object(raw: bytes) -> dict[str, Any] | Response:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return _error(400, "invalid_json", "The body is not valid UTF-8 JSON.")
    if not isinstance(body, dict):
        return _error(422, "validation_error", "The body must be a JSON object.", {"": "not an object"})
    return body


async def _pause(request: Request, seconds: float) -> None:
    """Wait `seconds`, or until the caller hangs up: Desk's time limit ends a slow turn, and so does Ctrl+C."""

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    try:
        async with asyncio.timeout(seconds):
            await hung_up()
    except TimeoutError:
        pass


def _form_mode(raw: bytes) -> str | Response:
    try:
        values = parse_qs(raw.decode())
    except UnicodeDecodeError:
        return _error(400, "invalid_form", "The form is not valid UTF-8.")
    return values.get("mode", [""])[0]


def _json_mode(raw: bytes) -> str | Response:
    body = _json_object(raw)
    if isinstance(body, Response):
        return body
    mode = body.get("mode")
    return mode if isinstance(mode, str) else ""


def _same_origin(headers: Headers) -> bool:
    """A browser names the page a form comes from: another site's page may not switch the demo's AI."""
    origin = headers.get("origin")
    if origin is None:  # not a browser's form: curl, a script
        return True
    return urlsplit(origin).netloc == headers.get("host", "")


def _root(request: Request) -> str:
    """Where this app is mounted (`/demo-ai` in `desk demo`)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(mode: str, root: str) -> str:
    buttons = "\n".join(
        f'<li><form method="post" action="{escape(root)}/mode">'
        f'<button type="submit" name="mode" value="{name}">{name}</button>'
        f"{' (now)' if name == mode else ''} {escape(EXPLANATIONS[name])}</form></li>"
        for name in MODES
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Demo AI: {mode}</title></head>
<body>
<h1>Demo AI</h1>
<p>Now <strong>{mode}</strong>: {escape(EXPLANATIONS[mode])}</p>
<p>Switch it, then write to the assistant in the customer chat. Staff see each fallback on the floor.</p>
<ul>
{buttons}
</ul>
</body>
</html>
"""


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


def _turn(body: Mapping[str, Any], prefix: str = "") -> JSONResponse:
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
            "reply": prefix + reply.text,
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
