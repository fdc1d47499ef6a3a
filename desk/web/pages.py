"""HTML pages: login, the desk (live queue and "my conversations"), a conversation, and the customer's chat.

Handlers are thin: they call the same actions as the JSON API and answer an htmx request with the component it
changed (templates/_*.html, rendered by desk.web.components), any other request with a redirect or a full page.
Every POST checks the session's CSRF token; every answer carries the security headers of desk.web.security.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import conversations, handoffs, staff
from desk.actions.reads import conversation_for_customer_token, read_conversation
from desk.auth.principals import StaffPrincipal
from desk.errors import Conflict, DeskError, Forbidden, Unauthorized, ValidationFailed
from desk.store.shapes import message_json, note_json
from desk.web import components as c
from desk.web import forms
from desk.web.auth import runtime, session_staff
from desk.web.security import csrf_ok, csrf_token, page_headers, same_origin, start_session
from desk.web.templating import render

MAX_PASSWORD_CHARS = 1024
MAX_TOKEN_CHARS = 200
Handler = Callable[[Request], Awaitable[Response]]


class _Halt(Exception):
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
        except _Halt as halt:
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
        raise _Halt(Response(status_code=401, headers={"HX-Redirect": "/login"}))
    raise _Halt(RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303))


async def checked_post(request: Request) -> tuple[StaffPrincipal, dict[str, str]]:
    """The signed-in staff member and their form, once the CSRF token and the Origin are right."""
    who = await signed_in(request)
    form = await forms.read_form(request)
    if not csrf_ok(request, form) or not same_origin(request, runtime(request).settings.base_url):
        message = "This form has expired or did not come from the desk. Reload the page and try again."
        raise _Halt(error_page(request, 403, message, "Refused"))
    return who, form


def safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/desk"


# --- signing in ------------------------------------------------------------------------------------------------


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
    start_session(request, user.id)
    return RedirectResponse(target, status_code=303)


@page_route
async def logout(request: Request) -> Response:
    form = await forms.read_form(request)
    if not csrf_ok(request, form):
        return error_page(request, 403, "This form has expired. Reload the page and try again.", "Refused")
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# --- the desk ----------------------------------------------------------------------------------------------------


@page_route
async def desk_page(request: Request) -> Response:
    who = await signed_in(request)
    rt = runtime(request)
    items, mine = await c.load_queue(rt, who), await c.load_mine(rt, who)
    return page(request, "desk.html", me=who, csrf=csrf_token(request), ws_url="/ws/ui", items=items, mine=mine)


@page_route
async def queue_fragment(request: Request) -> Response:
    who = await signed_in(request)
    return html(request, c.queue_html(await c.load_queue(runtime(request), who)))


@page_route
async def conversation_page(request: Request) -> Response:
    who = await signed_in(request)
    conversation_id = request.path_params["id"]
    view = await c.load_view(runtime(request), conversation_id, who, csrf_token(request))
    ws_url = "/ws/ui?" + urlencode({"conversation": conversation_id})
    return page(request, "conversation.html", **c.conversation_page_context(view), ws_url=ws_url)


def changed(
    request: Request,
    view: c.ConversationView,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    """After a move on a conversation: its status and composer for htmx, a redirect or an error page otherwise."""
    if is_htmx(request):
        body = c.status_html(view, notice=notice, error=error, form=form) + c.composer_html(view, oob=True)
        return html(request, body, status)
    if status >= 400:
        return error_page(request, status, notice or error or "That did not work.")
    return RedirectResponse(f"/desk/conversations/{view.id}", status_code=303)


@page_route
async def claim(request: Request) -> Response:
    who, _ = await checked_post(request)
    conversation_id, rt, csrf = request.path_params["id"], runtime(request), csrf_token(request)
    try:
        await rt.call(handoffs.claim, conversation_id=conversation_id, user=who)
    except Conflict as exc:
        view = await c.load_view_or_outline(rt, conversation_id, who, csrf)
        holder = view.conv.get("assignee")
        lost = exc.code == "already_assigned" and holder
        notice = f"Already claimed by {holder['name']}." if lost and holder else exc.message
        return changed(request, view, status=exc.status, notice=notice)
    return changed(request, await c.load_view(rt, conversation_id, who, csrf))


async def _finish(request: Request, move: str) -> Response:
    who, form = await checked_post(request)
    conversation_id, rt, csrf = request.path_params["id"], runtime(request), csrf_token(request)
    action = handoffs.return_to_ai if move == "return" else handoffs.resolve
    try:
        outcome = forms.outcome(form)
        await rt.call(read_conversation, conversation_id, who)
        await rt.call(action, conversation_id=conversation_id, by=who, outcome=outcome)
    except (ValidationFailed, Forbidden, Conflict) as exc:
        view = await c.load_view_or_outline(rt, conversation_id, who, csrf)
        return changed(request, view, status=exc.status, error=exc.message, form={**form, "action": move})
    return changed(request, await c.load_view_or_outline(rt, conversation_id, who, csrf))


@page_route
async def return_to_ai(request: Request) -> Response:
    return await _finish(request, "return")


@page_route
async def resolve(request: Request) -> Response:
    return await _finish(request, "resolve")


def _form_view(who: StaffPrincipal, conversation_id: str, csrf: str) -> c.ConversationView:
    """Enough of a view to re-render a reply or note form (its id, the CSRF token), without a read."""
    return c.ConversationView(who, {"id": conversation_id}, {}, csrf=csrf)


@page_route
async def reply(request: Request) -> Response:
    who, form = await checked_post(request)
    conversation_id, rt = request.path_params["id"], runtime(request)
    view = _form_view(who, conversation_id, csrf_token(request))
    try:
        posted = await rt.call(
            conversations.post_message,
            conversation_id=conversation_id,
            author=who,
            text=forms.message_text(form),
            client_id=forms.client_id(form),
        )
    except (ValidationFailed, Forbidden, Conflict) as exc:
        return _form_failed(request, c.reply_form_html(view, text=form.get("text", ""), error=exc.message), exc)
    if not is_htmx(request):
        return RedirectResponse(f"/desk/conversations/{conversation_id}", status_code=303)
    appended = c.appended_html(conversation_id, message=message_json(posted.message))
    return html(request, c.reply_form_html(view) + appended)


@page_route
async def note(request: Request) -> Response:
    who, form = await checked_post(request)
    conversation_id, rt = request.path_params["id"], runtime(request)
    view = _form_view(who, conversation_id, csrf_token(request))
    try:
        added = await rt.call(
            conversations.add_note,
            conversation_id=conversation_id,
            author=who,
            text=forms.message_text(form),
            client_id=forms.client_id(form),
        )
    except (ValidationFailed, Forbidden, Conflict) as exc:
        return _form_failed(request, c.note_form_html(view, text=form.get("text", ""), error=exc.message), exc)
    if not is_htmx(request):
        return RedirectResponse(f"/desk/conversations/{conversation_id}", status_code=303)
    return html(request, c.note_form_html(view) + c.appended_html(conversation_id, note=note_json(added)))


def _form_failed(request: Request, form_html: str, exc: DeskError) -> Response:
    if is_htmx(request):
        return html(request, form_html, exc.status)
    return error_page(request, exc.status, exc.message)


# --- the customer's chat ----------------------------------------------------------------------------------------


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


ROUTES: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/desk", desk_page, methods=["GET"]),
    Route("/desk/queue", queue_fragment, methods=["GET"]),
    Route("/desk/conversations/{id:hexid}", conversation_page, methods=["GET"]),
    Route("/desk/conversations/{id:hexid}/claim", claim, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/reply", reply, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/note", note, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/return", return_to_ai, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/resolve", resolve, methods=["POST"]),
    Route("/chat/{token}", chat_page, methods=["GET"]),
]
