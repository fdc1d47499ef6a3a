"""JSON API shared by integrations and staff: conversations, messages, escalations, the event feed."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from desk.actions import conversations, handoffs
from desk.actions.reads import read_conversation
from desk.auth.principals import IntegrationPrincipal
from desk.errors import ValidationFailed
from desk.schemas import ConversationCreate, EscalationCreate, MessageCreate
from desk.store.events import fetch_for_integration
from desk.store.shapes import message_json, note_json
from desk.web import auth
from desk.web.bodies import json_body, parse_json, read_body, validate

FEED_WAIT_MAX_S = 30
FEED_LIMIT = 100


async def create_conversation(request: Request) -> JSONResponse:
    who = await auth.integration(request)
    body = await json_body(request, ConversationCreate)
    rt = auth.runtime(request)
    conversation, token = await rt.call(
        conversations.create_conversation,
        integration=who,
        customer=body.customer.model_dump(),
        channel=body.channel,
        metadata=body.metadata,
        secret=rt.settings.secret_key,
    )
    return JSONResponse(
        {
            "id": conversation.id,
            "status": conversation.status,
            "customer_token": token,
            "chat_url": f"{rt.settings.base_url}/chat/{token}",
        },
        status_code=201,
    )


async def get_conversation(request: Request) -> JSONResponse:
    who = await auth.caller(request)
    body = await auth.runtime(request).call(read_conversation, request.path_params["id"], who)
    return JSONResponse(body)


async def post_message(request: Request) -> JSONResponse:
    who = await auth.caller(request)
    body = await json_body(request, MessageCreate)
    rt = auth.runtime(request)
    conversation_id = request.path_params["id"]
    if body.internal:
        if isinstance(who, IntegrationPrincipal):
            raise ValidationFailed("Integrations cannot write internal notes.", fields={"internal": "staff only"})
        note = await rt.call(
            conversations.add_note,
            conversation_id=conversation_id,
            author=who,
            text=body.text,
            client_id=body.client_id,
        )
        return JSONResponse(note_json(note), status_code=201)
    posted = await rt.call(
        conversations.post_message,
        conversation_id=conversation_id,
        author=who,
        text=body.text,
        client_id=body.client_id,
    )
    return JSONResponse(message_json(posted.message), status_code=201 if posted.created else 200)


async def escalate(request: Request) -> JSONResponse:
    who = await auth.integration(request)
    raw = await read_body(request)
    data = parse_json(raw)
    bundle = validate(EscalationCreate, data)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ValidationFailed("Idempotency-Key must be 1 to 200 characters.", fields={"Idempotency-Key": "length"})
    rt = auth.runtime(request)
    policy = rt.policy.current
    answer, _created = await rt.call(
        handoffs.escalate,
        integration=who,
        bundle=bundle.model_dump(mode="json", exclude_unset=False),
        idempotency_key=key,
        secret=rt.settings.secret_key,
        base_url=rt.settings.base_url,
        policy_version=policy.version,
        sla_s=policy.reason(bundle.reason.code).sla_s,
    )
    # A replay returns the first answer, status included.
    return JSONResponse(answer, status_code=201)


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer.", fields={name: "not an integer"}) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}.", fields={name: "out of range"})
    return value


async def events_feed(request: Request) -> JSONResponse:
    """Long-polled durable feed: the integration's events after `after`, waiting up to `wait` seconds for some."""
    who = await auth.integration(request)
    after = _int_param(request, "after", 0, low=0, high=2**62)
    wait = _int_param(request, "wait", 0, low=0, high=FEED_WAIT_MAX_S)
    rt = auth.runtime(request)

    def fetch() -> list[dict[str, Any]]:
        with rt.db.read() as session:
            return [e.public() for e in fetch_for_integration(session, who.id, after, FEED_LIMIT)]

    deadline = anyio.current_time() + wait
    events = await anyio.to_thread.run_sync(fetch)
    while not events and anyio.current_time() < deadline:
        await rt.pump.wait_changed(deadline - anyio.current_time())
        events = await anyio.to_thread.run_sync(fetch)
    cursor = str(events[-1]["id"]) if events else str(after)
    return JSONResponse({"events": events, "cursor": cursor})


async def abandon(request: Request) -> JSONResponse:
    """The integration tells the desk its customer left (closed the channel) while waiting for a human."""
    who = await auth.integration(request)
    conversation_id = request.path_params["id"]
    rt = auth.runtime(request)
    await rt.call(read_conversation, conversation_id, who)
    await rt.call(handoffs.abandon, conversation_id=conversation_id, actor_kind="integration", actor_id=who.id)
    return JSONResponse(await rt.call(read_conversation, conversation_id, who))


ROUTES = [
    Route("/api/v1/conversations", create_conversation, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}", get_conversation, methods=["GET"]),
    Route("/api/v1/conversations/{id:hexid}/messages", post_message, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}/abandon", abandon, methods=["POST"]),
    Route("/api/v1/escalations", escalate, methods=["POST"]),
    Route("/api/v1/events", events_feed, methods=["GET"]),
]
