"""Signing in and out of the desk."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import sessions, staff
from desk.errors import Unauthorized
from desk.web import forms
from desk.web.auth import runtime, session_staff
from desk.web.pages._common import error_page, page, page_route, safe_next
from desk.web.security import csrf_ok, csrf_token, session_id, start_session

MAX_PASSWORD_CHARS = 1024


async def home(request: Request) -> Response:
    who = await session_staff(request)
    return RedirectResponse("/desk" if who else "/login", status_code=303)


@page_route
async def login_form(request: Request) -> Response:
    if await session_staff(request) is not None:
        return RedirectResponse("/desk", status_code=303)
    return page(request, "login.html", csrf=csrf_token(request), next=safe_next(request.query_params.get("next")))


@page_route
async def login(request: Request) -> Response:
    form = await forms.read_form(request)
    email, password, target = form.get("email", ""), form.get("password", ""), safe_next(form.get("next"))
    context = {"email": email, "next": target}
    if not csrf_ok(request, form):
        error = "Your sign-in form expired. Please try again."
        return page(request, "login.html", 403, csrf=csrf_token(request), error=error, **context)
    try:
        if len(password) > MAX_PASSWORD_CHARS:
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        user = await runtime(request).call_slow(staff.verify_credentials, email=email, password=password)
    except Unauthorized:
        error = "Wrong email or password."
        return page(request, "login.html", 401, csrf=csrf_token(request), error=error, **context)
    opened = await runtime(request).call(sessions.start_session, user=user)
    start_session(request, opened.id, opened.csrf)
    return RedirectResponse(target, status_code=303)


@page_route
async def logout(request: Request) -> Response:
    form = await forms.read_form(request)
    if not csrf_ok(request, form):
        return error_page(request, 403, "This form has expired. Reload the page and try again.", "Refused")
    if sid := session_id(request):
        await runtime(request).call(sessions.end_session, session_id=sid)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def session_status(request: Request) -> Response:
    """Whether this browser is still signed in (204) or not (401): the page asks when its socket closes."""
    who = await session_staff(request)
    return Response(status_code=204 if who else 401, headers={"Cache-Control": "no-store"})


ROUTES: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/session", session_status, methods=["GET"]),
]
