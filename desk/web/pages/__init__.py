"""The HTML pages, one module per screen (see desk.web.pages._common for what they share)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from desk.web.pages import auth, chat, queue, workspace

ROUTES: list[BaseRoute] = [*auth.ROUTES, *queue.ROUTES, *workspace.ROUTES, *chat.ROUTES]
