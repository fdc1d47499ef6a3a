"""Supervisors and admins: the canned replies agents insert with `/`. List, create, edit in place, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import canned
from desk.auth.principals import StaffPrincipal
from desk.errors import ValidationFailed
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route
from desk.web.pages._roles import manager, manager_post
from desk.web.security import csrf_token

NOTICES = {"created": "Canned reply added.", "updated": "Canned reply saved.", "deleted": "Canned reply deleted."}


async def _list(
    request: Request,
    who: StaffPrincipal,
    *,
    status: int = 200,
    editing: str | None = None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    """The list; a refused form comes back open (`editing`: the reply's id, "new" for the add form) as typed."""
    replies = await runtime(request).call(canned.list_canned)
    context: dict[str, Any] = {
        "replies": replies,
        "editing": editing,
        "form": form or {},
        "errors": errors or {},
        "error": error,
    }
    notice = NOTICES.get(request.query_params.get("done", ""))
    return page(request, "admin_canned.html", status, me=who, csrf=csrf_token(request), notice=notice, **context)


def _typed(form: dict[str, str]) -> dict[str, str]:
    return {"title": form.get("title", ""), "body": form.get("body", "").replace("\r\n", "\n")}


@page_route
async def canned_page(request: Request) -> Response:
    return await _list(request, await manager(request))


@page_route
async def create(request: Request) -> Response:
    who, form = await manager_post(request)
    typed = _typed(form)
    try:
        await runtime(request).call(canned.create_canned, by=who, **typed)
    except ValidationFailed as exc:
        return await _list(
            request, who, status=exc.status, editing="new", form=typed, errors=exc.fields, error=exc.message
        )
    return RedirectResponse("/admin/canned-replies?done=created", status_code=303)


@page_route
async def update(request: Request) -> Response:
    who, form = await manager_post(request)
    canned_id, typed = request.path_params["id"], _typed(form)
    try:
        await runtime(request).call(canned.update_canned, by=who, canned_id=canned_id, **typed)
    except ValidationFailed as exc:
        return await _list(
            request, who, status=exc.status, editing=canned_id, form=typed, errors=exc.fields, error=exc.message
        )
    return RedirectResponse("/admin/canned-replies?done=updated", status_code=303)


@page_route
async def delete(request: Request) -> Response:
    who, _ = await manager_post(request)
    await runtime(request).call(canned.delete_canned, by=who, canned_id=request.path_params["id"])
    return RedirectResponse("/admin/canned-replies?done=deleted", status_code=303)


ROUTES: list[BaseRoute] = [
    Route("/admin/canned-replies", canned_page, methods=["GET"]),
    Route("/admin/canned-replies", create, methods=["POST"]),
    Route("/admin/canned-replies/{id:hexid}", update, methods=["POST"]),
    Route("/admin/canned-replies/{id:hexid}/delete", delete, methods=["POST"]),
]
