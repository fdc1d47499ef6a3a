"""What every HTML page handler shares: full page or htmx fragment answers, error pages, sign-in and CSRF checks.

Handlers are thin: they call the same actions as the JSON API and answer an htmx request with the component it
changed (templates/_*.html, rendered by desk.web.components), any other request with a redirect or a full page.
Every POST checks the session's CSRF token and the Origin; every answer carries the security headers of
desk.web.security.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from desk.auth.principals import StaffPrincipal
from desk.errors import DeskError
from desk.web import forms
from desk.web.auth import runtime, session_staff
from desk.web.security import csrf_ok, page_headers, same_origin
from desk.web.templating import render

Handler = Callable[[Request], Awaitable[Response]]


class Halt(Exception):
    """Stop a handler and answer with this response (not signed in, bad CSRF token...)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def html(request: Request, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**page_headers(request), **(headers or {})})


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return html(request, render(template, **context), status)


def error_page(request: Request, status: int, message: str, title: str = "Something is not right") -> HTMLResponse:
    if is_htmx(request):
        # Shown in the page's flash area, leaving the component the request came from as it was.
        flash = render("_flash.html", message=message)
        return html(request, flash, status, {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    return page(request, "error.html", status, title=title, message=message, back="/desk")


def page_route(handler: Handler) -> Handler:
    @wraps(handler)
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Halt as halt:
            return halt.response
        except DeskError as exc:
            title = "Not found" if exc.status == 404 else "Something is not right"
            return error_page(request, exc.status, exc.message, title)

    return answer


async def signed_in(request: Request) -> StaffPrincipal:
    who = await session_staff(request)
    if who is not None:
        return who
    if is_htmx(request):
        raise Halt(Response(status_code=401, headers={"HX-Redirect": "/login"}))
    raise Halt(RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303))


async def checked_post(request: Request) -> tuple[StaffPrincipal, dict[str, str]]:
    """The signed-in staff member and their form, once the CSRF token and the Origin are right."""
    who = await signed_in(request)
    form = await forms.read_form(request)
    settings = runtime(request).settings
    if not csrf_ok(request, form) or not same_origin(request, settings.base_url, settings.allowed_origins):
        message = "This form has expired or did not come from the desk. Reload the page and try again."
        raise Halt(error_page(request, 403, message, "Refused"))
    return who, form


def safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/desk"
