"""Running the ASGI app under uvicorn with Desk's limits."""

from __future__ import annotations

import gc
import socket
from collections.abc import Sequence

import uvicorn
from starlette.routing import BaseRoute

from desk.config import MAX_WS_FRAME_BYTES, Settings
from desk.web.app import create_app


class _Server(uvicorn.Server):
    """Prints the banner once the socket is listening, so the URLs it shows answer at once."""

    def __init__(self, config: uvicorn.Config, banner: str | None) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything loaded so far (modules, templates, the app) lives as long as the process: move it out of the
        # collector's reach, or each full collection walks it all. Measured with bench.queue_page: full
        # collections paused the server 95-130 ms, the whole of the p99 of the queue page and its fan-out.
        gc.collect()
        gc.freeze()
        if self.banner and not self.should_exit:
            print(self.banner, flush=True)


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
    _Server(config, banner).run()
