"""The HTML pages, one module per screen (see desk.web.pages._common for what they share)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from desk.web.pages import admin, auth, chat, floor, learning, queue, workspace

ROUTES: list[BaseRoute] = [
    *auth.ROUTES,
    *queue.ROUTES,
    *workspace.ROUTES,
    *chat.ROUTES,
    *floor.ROUTES,
    *learning.ROUTES,
    *admin.ROUTES,
]
