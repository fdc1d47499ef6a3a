"""The desk's front page: the live queue and "my conversations"."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from desk.web.auth import runtime
from desk.web.components import queue as q
from desk.web.pages._common import html, page, page_route, signed_in
from desk.web.security import csrf_token


@page_route
async def desk_page(request: Request) -> Response:
    who = await signed_in(request)
    rt = runtime(request)
    items, mine = await q.load_queue(rt, who), await q.load_mine(rt, who)
    return page(request, "desk.html", me=who, csrf=csrf_token(request), ws_url="/ws/ui", items=items, mine=mine)


@page_route
async def queue_fragment(request: Request) -> Response:
    who = await signed_in(request)
    return html(request, q.queue_html(await q.load_queue(runtime(request), who)))


ROUTES: list[BaseRoute] = [
    Route("/desk", desk_page, methods=["GET"]),
    Route("/desk/queue", queue_fragment, methods=["GET"]),
]
