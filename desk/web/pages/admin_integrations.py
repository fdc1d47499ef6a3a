"""Admin: integrations (AI agents, automations). List, create, change the webhook URLs, rotate the credentials,
deactivate and reactivate.

The token and the webhook secret exist in clear only in the answer to the POST that made them (creation or
rotation): they are stored as a hash (the token) or never shown again (the secret), and the page is `no-store`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import integrations
from desk.auth.principals import StaffPrincipal
from desk.errors import ValidationFailed
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route
from desk.web.pages._formats import FORMATS
from desk.web.pages._roles import admin, admin_post
from desk.web.security import csrf_token

KEPT = ("name", "webhook_url", "fallback_webhook_url")
NOTICES = {
    "updated": "Webhook URLs saved.",
    "deactivated": "Deactivated: its token is refused from now on.",
    "reactivated": "Reactivated: its token works again.",
}


async def _list(
    request: Request,
    who: StaffPrincipal,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    found = await runtime(request).call(integrations.list_integrations)
    context: dict[str, Any] = {"integrations": found, "form": form or {}, "errors": errors or {}, "error": error}
    context["notice"] = NOTICES.get(request.query_params.get("done", ""))
    return page(request, "admin_integrations.html", status, me=who, csrf=csrf_token(request), **context, **FORMATS)


@page_route
async def integrations_page(request: Request) -> Response:
    return await _list(request, await admin(request))


@page_route
async def create(request: Request) -> Response:
    who, form = await admin_post(request)
    try:
        made = await runtime(request).call(
            integrations.create_integration,
            name=form.get("name", ""),
            webhook_url=form.get("webhook_url"),
            fallback_webhook_url=form.get("fallback_webhook_url"),
            by=who,
        )
    except ValidationFailed as exc:
        kept = {key: form.get(key, "") for key in KEPT}
        return await _list(request, who, status=exc.status, form=kept, errors=exc.fields, error=exc.message)
    return await _credentials(request, who, made, created=True)


async def _credentials(
    request: Request, who: StaffPrincipal, made: integrations.Credentials, *, created: bool
) -> Response:
    integration = await runtime(request).call(integrations.get_integration, made.id)
    context: dict[str, Any] = {"integration": integration, "credentials": made, "created": created}
    return page(request, "admin_integration_credentials.html", me=who, csrf=csrf_token(request), **context)


async def _edit(
    request: Request,
    who: StaffPrincipal,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    integration = await runtime(request).call(integrations.get_integration, request.path_params["id"])
    if form is None:
        form = {key: getattr(integration, key) or "" for key in ("webhook_url", "fallback_webhook_url")}
    context: dict[str, Any] = {"integration": integration, "form": form, "errors": errors or {}, "error": error}
    notice = NOTICES.get(request.query_params.get("done", ""))
    return page(request, "admin_integration.html", status, me=who, csrf=csrf_token(request), notice=notice, **context)


@page_route
async def edit_page(request: Request) -> Response:
    return await _edit(request, await admin(request))


@page_route
async def set_webhooks(request: Request) -> Response:
    who, form = await admin_post(request)
    integration_id = request.path_params["id"]
    try:
        await runtime(request).call(
            integrations.set_webhooks,
            by=who,
            integration_id=integration_id,
            webhook_url=form.get("webhook_url"),
            fallback_webhook_url=form.get("fallback_webhook_url"),
        )
    except ValidationFailed as exc:
        kept = {key: form.get(key, "") for key in KEPT}
        return await _edit(request, who, status=exc.status, form=kept, errors=exc.fields, error=exc.message)
    return RedirectResponse(f"/admin/integrations/{integration_id}?done=updated", status_code=303)


@page_route
async def rotate(request: Request) -> Response:
    who, _ = await admin_post(request)
    rt = runtime(request)
    made = await rt.call(integrations.rotate_credentials, integration_id=request.path_params["id"], by=who)
    return await _credentials(request, who, made, created=False)


async def _set_active(request: Request, active: bool) -> Response:
    who, _ = await admin_post(request)
    integration_id = request.path_params["id"]
    await runtime(request).call(integrations.set_active, by=who, integration_id=integration_id, active=active)
    done = "reactivated" if active else "deactivated"
    return RedirectResponse(f"/admin/integrations/{integration_id}?done={done}", status_code=303)


@page_route
async def deactivate(request: Request) -> Response:
    return await _set_active(request, False)


@page_route
async def reactivate(request: Request) -> Response:
    return await _set_active(request, True)


ROUTES: list[BaseRoute] = [
    Route("/admin/integrations", integrations_page, methods=["GET"]),
    Route("/admin/integrations", create, methods=["POST"]),
    Route("/admin/integrations/{id:hexid}", edit_page, methods=["GET"]),
    Route("/admin/integrations/{id:hexid}", set_webhooks, methods=["POST"]),
    Route("/admin/integrations/{id:hexid}/rotate", rotate, methods=["POST"]),
    Route("/admin/integrations/{id:hexid}/deactivate", deactivate, methods=["POST"]),
    Route("/admin/integrations/{id:hexid}/reactivate", reactivate, methods=["POST"]),
]
