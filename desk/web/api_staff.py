"""Staff JSON API: token login, the queue, claim, return, resolve, transfer, assign, learning log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from desk.actions import handoffs, learning, metrics, staff
from desk.actions.reads import queue, read_conversation
from desk.auth.principals import StaffPrincipal
from desk.errors import ValidationFailed
from desk.schemas import AssignBody, LoginBody, OutcomeBody, TransferBody
from desk.web import auth
from desk.web.bodies import json_body


async def token(request: Request) -> JSONResponse:
    body = await json_body(request, LoginBody)
    _, answer = await auth.runtime(request).call_slow(staff.login, email=body.email, password=body.password)
    return JSONResponse(answer)


async def get_queue(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    items = await auth.runtime(request).call(queue, who, skill=request.query_params.get("skill") or None)
    return JSONResponse({"items": items})


async def _move(request: Request, who: StaffPrincipal, action: Callable[..., None], **arguments: Any) -> JSONResponse:
    """A state change on a conversation the caller may see (404 otherwise), answered with the conversation."""
    conversation_id = request.path_params["id"]
    rt = auth.runtime(request)
    await rt.call(read_conversation, conversation_id, who)
    await rt.call(action, conversation_id=conversation_id, by=who, **arguments)
    return JSONResponse(await rt.call(read_conversation, conversation_id, who))


async def claim(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    conversation_id = request.path_params["id"]
    rt = auth.runtime(request)
    # No visibility pre-check: a conversation someone else holds answers 409 already_assigned, not 404.
    await rt.call(handoffs.claim, conversation_id=conversation_id, user=who)
    return JSONResponse(await rt.call(read_conversation, conversation_id, who))


async def return_to_ai(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    body = await json_body(request, OutcomeBody)
    return await _move(request, who, handoffs.return_to_ai, outcome=body.outcome.model_dump(mode="json"))


async def resolve(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    body = await json_body(request, OutcomeBody)
    return await _move(request, who, handoffs.resolve, outcome=body.outcome.model_dump(mode="json"))


async def transfer(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    body = await json_body(request, TransferBody)
    return await _move(request, who, handoffs.transfer, to_agent_id=body.to_agent_id, to_skill=body.to_skill)


async def assign(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    body = await json_body(request, AssignBody)
    return await _move(request, who, handoffs.assign, agent_id=body.agent_id)


def parse_since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed("since must be an ISO 8601 date or time.", fields={"since": "not a date"}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


async def learning_log(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    since = parse_since(request.query_params.get("since"))
    items = await auth.runtime(request).call(learning.list_entries, viewer=who, since=since)
    return JSONResponse({"items": items})


WINDOW_UNITS_S = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=90)


def parse_window(raw: str | None) -> timedelta:
    raw = (raw or "1h").strip()
    unit, amount = raw[-1:], raw[:-1]
    if unit not in WINDOW_UNITS_S or not amount.isdigit() or int(amount) == 0:
        raise ValidationFailed("window must look like 15m, 1h or 7d.", fields={"window": "bad window"})
    window = timedelta(seconds=int(amount) * WINDOW_UNITS_S[unit])
    if window > MAX_WINDOW:
        raise ValidationFailed("window can be at most 90 days.", fields={"window": "too long"})
    return window


async def metrics_summary(request: Request) -> JSONResponse:
    await auth.staff(request)
    window = parse_window(request.query_params.get("window"))
    return JSONResponse(await auth.runtime(request).call(metrics.summary, window=window))


ROUTES = [
    Route("/api/v1/auth/token", token, methods=["POST"]),
    Route("/api/v1/queue", get_queue, methods=["GET"]),
    Route("/api/v1/conversations/{id:hexid}/claim", claim, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}/return", return_to_ai, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}/resolve", resolve, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}/transfer", transfer, methods=["POST"]),
    Route("/api/v1/conversations/{id:hexid}/assign", assign, methods=["POST"]),
    Route("/api/v1/learning-log", learning_log, methods=["GET"]),
    Route("/api/v1/metrics/summary", metrics_summary, methods=["GET"]),
]
