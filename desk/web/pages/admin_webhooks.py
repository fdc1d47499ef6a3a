"""Admin: webhook deliveries the integrations' receivers refused for good (dead letters), each replayable.

A replay answers after its attempt, with a redirect back to the list; the row then shows how it went.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import dead_letters
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route
from desk.web.pages._formats import FORMATS
from desk.web.pages._roles import admin, admin_post
from desk.web.security import csrf_token

NOTICES = {
    "replayed": "Replayed: the webhook accepted the event.",
    "refused": "Replay failed: the webhook did not accept the event. Its row shows the answer.",
}


@page_route
async def webhooks_page(request: Request) -> Response:
    who = await admin(request)
    found = await runtime(request).call(dead_letters.list_dead_letters, by=who)
    notice = NOTICES.get(request.query_params.get("done", ""))
    return page(
        request, "admin_webhooks.html", me=who, csrf=csrf_token(request), dead_letters=found, notice=notice, **FORMATS
    )


@page_route
async def replay(request: Request) -> Response:
    who, _ = await admin_post(request)
    status = await runtime(request).deliverer.replay(request.path_params["id"], by=who)
    done = "replayed" if status is not None and 200 <= status < 300 else "refused"
    return RedirectResponse(f"/admin/webhooks?done={done}", status_code=303)


ROUTES: list[BaseRoute] = [
    Route("/admin/webhooks", webhooks_page, methods=["GET"]),
    Route("/admin/webhooks/{id:hexid}/replay", replay, methods=["POST"]),
]
