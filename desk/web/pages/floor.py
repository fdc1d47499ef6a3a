"""The supervisor's floor: the live view of staff, queue and conversations, and reassigning from it."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import handoffs
from desk.errors import ValidationFailed
from desk.web.auth import runtime
from desk.web.components.floor import floor_html, load_floor
from desk.web.convertors import HexIdConvertor
from desk.web.pages._common import html, is_htmx, page, page_route
from desk.web.pages._roles import manager, manager_post
from desk.web.security import csrf_token
from desk.web.templating import render

FLOOR_SOCKET = "/ws/ui?page=floor"
HEX_ID = re.compile(HexIdConvertor.regex)


@page_route
async def floor_page(request: Request) -> Response:
    who = await manager(request)
    floor = await load_floor(runtime(request), who)
    return page(request, "floor.html", me=who, csrf=csrf_token(request), ws_url=FLOOR_SOCKET, floor=floor)


@page_route
async def floor_fragment(request: Request) -> Response:
    who = await manager(request)
    return html(request, floor_html(await load_floor(runtime(request), who)))


@page_route
async def assign(request: Request) -> Response:
    """Give a queued or assigned conversation to a staff member; htmx gets the floor back, with a notice."""
    who, form = await manager_post(request)
    agent_id = form.get("agent_id", "").strip()
    if not HEX_ID.fullmatch(agent_id):
        raise ValidationFailed("Choose who should take this conversation.", fields={"agent_id": "required"})
    rt = runtime(request)
    await rt.call(handoffs.assign, conversation_id=request.path_params["id"], by=who, agent_id=agent_id)
    if not is_htmx(request):
        return RedirectResponse("/floor", status_code=303)
    floor = await load_floor(rt, who)
    name = next((person.who.name for person in floor.staff if person.who.id == agent_id), "")
    return html(request, floor_html(floor) + render("_floor_notice.html", agent=name))


ROUTES: list[BaseRoute] = [
    Route("/floor", floor_page, methods=["GET"]),
    Route("/floor/fragment", floor_fragment, methods=["GET"]),
    Route("/floor/conversations/{id:hexid}/assign", assign, methods=["POST"]),
]
