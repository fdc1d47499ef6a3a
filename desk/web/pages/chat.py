"""The customer's chat page (CONTRACT.md section 7)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from desk.actions.reads import conversation_for_customer_token
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route

MAX_TOKEN_CHARS = 200


@page_route
async def chat_page(request: Request) -> Response:
    token = request.path_params["token"]
    conversation = None
    if len(token) <= MAX_TOKEN_CHARS:
        conversation = await runtime(request).call(conversation_for_customer_token, token)
    if conversation is None:
        message = "This chat link is not valid. Please start a new conversation."
        return page(request, "error.html", 404, title="Chat not found", message=message)
    return page(request, "chat.html", token=token)


ROUTES: list[BaseRoute] = [Route("/chat/{token}", chat_page, methods=["GET"])]
