"""The desk's front page: the live queue (filtered by skill with `?skill=`) and "my conversations".

The page connects its live socket with the same filter (`/ws/ui?skill=…`), so what the socket pushes replaces the
queue with the same filtered queue. `Server-Timing` says where the time of an answer went (signing in, each read,
rendering), for the benchmark and for anyone looking at a slow page in the browser's tools.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from desk.web.auth import runtime
from desk.web.components import queue as q
from desk.web.pages._common import html, page_route, signed_in
from desk.web.security import csrf_token
from desk.web.templating import render


class _Timing:
    """Durations of the steps of one answer, as a `Server-Timing` header."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.steps: list[str] = []

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append(f"{name};dur={(now - self.last) * 1000:.1f}")
        self.last = now

    def header(self) -> dict[str, str]:
        return {"Server-Timing": ", ".join(self.steps)}


@page_route
async def desk_page(request: Request) -> Response:
    timing = _Timing()
    who = await signed_in(request)
    timing.step("session")
    rt, skill = runtime(request), q.skill_filter(request.query_params.get("skill"))
    view = await q.load_queue(rt, who, skill)
    timing.step("queue")
    mine, skills = await q.load_mine(rt, who), await q.load_filter_skills(rt, who, skill)
    timing.step("mine")
    ws_url = "/ws/ui" + (f"?{urlencode({'skill': skill})}" if skill else "")
    context = {"me": who, "csrf": csrf_token(request), "ws_url": ws_url, "skills": skills}
    body = render("desk.html", **q.queue_context(view), **q.mine_context(mine), **context)
    timing.step("render")
    return html(request, body, headers=timing.header())


@page_route
async def queue_fragment(request: Request) -> Response:
    timing = _Timing()
    who = await signed_in(request)
    timing.step("session")
    view = await q.load_queue(runtime(request), who, q.skill_filter(request.query_params.get("skill")))
    timing.step("queue")
    body = q.queue_html(view)
    timing.step("render")
    return html(request, body, headers=timing.header())


ROUTES: list[BaseRoute] = [
    Route("/desk", desk_page, methods=["GET"]),
    Route("/desk/queue", queue_fragment, methods=["GET"]),
]
