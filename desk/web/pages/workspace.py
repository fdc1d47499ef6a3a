"""The conversation workspace: a conversation's page and the moves on it (claim, reply, note, return, resolve,
transfer), and the canned replies its reply box offers after a `/`."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import conversations, handoffs, recommendations
from desk.actions.canned import list_canned
from desk.actions.reads import read_conversation
from desk.auth.principals import StaffPrincipal
from desk.errors import Conflict, DeskError, Forbidden, ValidationFailed
from desk.store.shapes import message_json, note_json
from desk.web import forms
from desk.web.auth import runtime
from desk.web.components import conversation as c
from desk.web.pages._common import checked_post, error_page, html, is_htmx, page, page_route, signed_in
from desk.web.security import csrf_token


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
    error_fields: dict[str, str] | None = None,
) -> Response:
    """After a move on a conversation: its status and composer for htmx, a redirect or an error page otherwise."""
    if is_htmx(request):
        status_part = c.status_html(view, notice=notice, error=error, form=form, error_fields=error_fields)
        return html(request, status_part + c.composer_html(view, oob=True), status)
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
        form = {**form, "action": move}
        return changed(request, view, status=exc.status, error=exc.message, form=form, error_fields=exc.fields)
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
async def transfer(request: Request) -> Response:
    who, form = await checked_post(request)
    conversation_id, rt, csrf = request.path_params["id"], runtime(request), csrf_token(request)
    try:
        to_agent_id, to_skill = forms.transfer_target(form)
        await rt.call(read_conversation, conversation_id, who)
        await rt.call(
            handoffs.transfer, conversation_id=conversation_id, by=who, to_agent_id=to_agent_id, to_skill=to_skill
        )
    except (ValidationFailed, Forbidden, Conflict) as exc:
        view = await c.load_view_or_outline(rt, conversation_id, who, csrf)
        form = {**form, "action": "transfer"}
        return changed(request, view, status=exc.status, error=exc.message, form=form, error_fields=exc.fields)
    view = await c.load_view_or_outline(rt, conversation_id, who, csrf)
    holder = view.conv.get("assignee")
    notice = f"Transferred to {holder['name']}." if to_agent_id and holder else f"Back in the queue for {to_skill}."
    return changed(request, view, notice=notice)


@page_route
async def reply(request: Request) -> Response:
    who, form = await checked_post(request)
    conversation_id, rt = request.path_params["id"], runtime(request)
    view = _form_view(who, conversation_id, csrf_token(request))
    try:
        inserted = forms.inserted_recommendations(form)
        posted = await rt.call(
            recommendations.post_reply,
            conversation_id=conversation_id,
            author=who,
            text=forms.message_text(form),
            client_id=forms.client_id(form),
            inserted=inserted,
        )
    except (ValidationFailed, Forbidden, Conflict) as exc:
        return _form_failed(request, _reply_again(view, form, exc), exc)
    if not is_htmx(request):
        return RedirectResponse(f"/desk/conversations/{conversation_id}", status_code=303)
    body = c.reply_form_html(view) + c.appended_html(conversation_id, message=message_json(posted.message))
    if inserted:
        # Each recommendation shows what became of it ("used", "edited"), and the outcome form's suggestion follows.
        body += c.bundle_html(await c.load_view(rt, conversation_id, who, view.csrf), oob=True)
    return html(request, body)


def _reply_again(view: c.ConversationView, form: dict[str, str], exc: DeskError) -> str:
    """The reply form after a refusal, losing nothing: the text, its client_id and (unless they were what was
    wrong) the recommendations inserted into it."""
    inserted = "" if "recommendation" in (exc.fields or {}) else form.get("recommendation", "")
    text, client_id = form.get("text", ""), forms.client_id(form)
    return c.reply_form_html(view, text=text, client_id=client_id, recommendation=inserted, error=exc.message)


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


@page_route
async def canned(request: Request) -> Response:
    """The canned replies whose title or body contains `q`, as the listbox under a reply box (`conversation`)."""
    await signed_in(request)
    query = request.query_params.get("q", "")[: forms.MAX_SEARCH_CHARS]
    conversation_id = request.query_params.get("conversation", "")
    if not conversation_id.isascii() or not conversation_id.isalnum() or len(conversation_id) > forms.MAX_ID_CHARS:
        raise ValidationFailed("Which conversation is this for?", fields={"conversation": "not a conversation id"})
    replies = await runtime(request).call(list_canned, search=query)
    return html(request, c.canned_html(conversation_id, replies, query=query))


def _form_failed(request: Request, form_html: str, exc: DeskError) -> Response:
    if is_htmx(request):
        return html(request, form_html, exc.status)
    return error_page(request, exc.status, exc.message)


ROUTES: list[BaseRoute] = [
    Route("/desk/conversations/{id:hexid}", conversation_page, methods=["GET"]),
    Route("/desk/conversations/{id:hexid}/claim", claim, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/reply", reply, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/note", note, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/return", return_to_ai, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/resolve", resolve, methods=["POST"]),
    Route("/desk/conversations/{id:hexid}/transfer", transfer, methods=["POST"]),
    Route("/desk/canned", canned, methods=["GET"]),
]
