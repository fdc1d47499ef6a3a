"""The bare relay: the floor that Desk's message path is compared with.

A tiny Starlette app served by uvicorn in its own process, on the same stack as ``desk serve``:
customers connect to ``/ws/chat``, one or more agents to ``/ws/agent``, and every text frame a
customer sends is forwarded, unchanged, to every connected agent socket. Nothing is parsed,
stored, sequenced or published anywhere else.

Run: ``python -m bench._relay --port 8765`` (binds 127.0.0.1 only).
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench._common import UVICORN_OPTIONS

_agents: set[WebSocket] = set()


async def healthz(_request: object) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def agent_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    _agents.add(websocket)
    try:
        while True:  # the agent only listens; wait for it to go away
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    finally:
        _agents.discard(websocket)


async def chat_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            for agent in tuple(_agents):
                try:
                    await agent.send_text(text)
                except (WebSocketDisconnect, RuntimeError):
                    _agents.discard(agent)
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        WebSocketRoute("/ws/chat", chat_socket),
        WebSocketRoute("/ws/agent", agent_socket),
    ]
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
