"""Admin JSON API (bearer staff token, admins only): webhook dead letters, listed and replayed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from desk.actions import dead_letters
from desk.web import auth


async def list_dead_letters(request: Request) -> JSONResponse:
    who = await auth.staff(request)
    integration_id = request.query_params.get("integration_id") or None
    items = await auth.runtime(request).call(dead_letters.list_dead_letters, integration_id=integration_id, by=who)
    return JSONResponse({"items": [item.public() for item in items]})


async def replay_dead_letter(request: Request) -> JSONResponse:
    """Sends the event now and answers after the attempt, whatever the receiver said (the item shows it)."""
    who = await auth.staff(request)
    dead_letter_id = request.path_params["id"]
    rt = auth.runtime(request)
    await rt.deliverer.replay(dead_letter_id, by=who)
    item = await rt.call(dead_letters.get_dead_letter, dead_letter_id, by=who)
    return JSONResponse(item.public())


ROUTES = [
    Route("/api/v1/admin/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/api/v1/admin/dead-letters/{id:hexid}/replay", replay_dead_letter, methods=["POST"]),
]
