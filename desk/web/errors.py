"""Every error leaves the server in the contract's shape: {"error": {"code", "message", "fields"?}}."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from desk.errors import DeskError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def desk_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DeskError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _wants_page(request: Request) -> bool:
    """Pages answer errors as pages; the JSON API in the contract's shape."""
    return not request.url.path.startswith(("/api/", "/healthz"))


def _page(request: Request, status: int, message: str) -> Response:
    from desk.web.pages._common import error_page  # pages import this module's helpers: import late, no cycle

    return error_page(request, status, message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if _wants_page(request):
        return _page(request, exc.status_code, "There is no such page." if exc.status_code == 404 else str(exc.detail))
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "Something went wrong on our side; nothing was changed."
    if _wants_page(request):
        return _page(request, 500, message)
    return error_response(500, "internal_error", message)


EXCEPTION_HANDLERS = {DeskError: desk_error, HTTPException: http_error, Exception: server_error}
