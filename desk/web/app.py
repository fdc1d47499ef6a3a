"""The Starlette application: JSON API, sockets, pages, static files, one runtime per process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from desk.config import Settings
from desk.runtime import Runtime
from desk.web import api_admin, api_conversations, api_staff, openapi, pages, ui_socket, ws_chat, ws_staff
from desk.web.errors import EXCEPTION_HANDLERS

ROOT = Path(__file__).resolve().parents[2]
SESSION_MAX_AGE_S = 12 * 3600


async def healthz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    return JSONResponse({"status": "ok", "bus": "ok" if rt.bus.healthy else "degraded"})


def create_app(settings: Settings, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        *api_conversations.ROUTES,
        *api_staff.ROUTES,
        *api_admin.ROUTES,
        *openapi.ROUTES,
        *ws_chat.ROUTES,
        *ws_staff.ROUTES,
        *ui_socket.ROUTES,
        *pages.ROUTES,
        Mount("/static", StaticFiles(directory=ROOT / "static", check_dir=False), name="static"),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="desk_session",
                max_age=SESSION_MAX_AGE_S,
                same_site="lax",
                https_only=settings.base_url.startswith("https://"),
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    return app
