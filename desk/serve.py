"""Running the ASGI app under uvicorn with Desk's limits."""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn
from starlette.routing import BaseRoute

from desk.config import MAX_WS_FRAME_BYTES, Settings
from desk.web.app import create_app


def serve(settings: Settings, *, extra_routes: Sequence[BaseRoute] = (), banner: str | None = None) -> None:
    app = create_app(settings, extra_routes=extra_routes)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=MAX_WS_FRAME_BYTES,
        ws_ping_interval=20,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if banner:
        print(banner, flush=True)
    server.run()
