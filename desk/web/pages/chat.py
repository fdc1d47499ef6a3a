"""The customer's chat page (CONTRACT.md section 7), alone or framed by the widget (static/widget.js).

Unlike the desk's pages, which no site may frame, the chat page (its error page too, so a stale widget link
says so instead of a blank frame) may be framed by the sites in DESK_WIDGET_ORIGINS. `?embed=1` drops the outer
chrome for the widget's frame; the page is otherwise the same.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions.reads import conversation_for_customer_token
from desk.web.auth import runtime
from desk.web.pages._common import page_route
from desk.web.security import page_headers
from desk.web.templating import render

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 200
# A CSP source: scheme://host[:port], the host may start with a "*." wildcard. Nothing that could end the
# directive (";", ",", spaces) gets into the header, whatever the setting says.
_ORIGIN = re.compile(r"^https?://(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


@lru_cache(maxsize=4)  # settings are fixed for the process: warn about a bad origin once, not per request
def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The CSP `frame-ancestors` value for DESK_WIDGET_ORIGINS: "*" for any site, else the desk and those."""
    if "*" in origins:
        return "*"
    valid = [origin for origin in origins if _ORIGIN.match(origin)]
    for origin in set(origins) - set(valid):
        log.warning("DESK_WIDGET_ORIGINS: ignoring %r (expected scheme://host[:port])", origin)
    return " ".join(["'self'", *valid])


def _chat_html(request: Request, template: str, status: int = 200, **context: object) -> HTMLResponse:
    ancestors = frame_ancestors(runtime(request).settings.widget_origins)
    embed = request.query_params.get("embed") == "1"
    body = render(template, embed=embed, **context)
    return HTMLResponse(body, status_code=status, headers=page_headers(request, frame_ancestors=ancestors))


@page_route
async def chat_page(request: Request) -> Response:
    token = request.path_params["token"]
    conversation = None
    if len(token) <= MAX_TOKEN_CHARS:
        conversation = await runtime(request).call(conversation_for_customer_token, token)
    if conversation is None:
        message = "This chat link is not valid. Please start a new conversation."
        return _chat_html(request, "error.html", 404, title="Chat not found", message=message)
    return _chat_html(request, "chat.html", token=token, last_seq=conversation.last_seq)


ROUTES: list[BaseRoute] = [Route("/chat/{token}", chat_page, methods=["GET"])]
