"""Pages for supervisors and admins: who may open them. The wrong side gets a 403 page (a flash for htmx), signed
out a redirect to the login page; a POST is checked for its CSRF token and Origin before its role."""

from __future__ import annotations

from starlette.requests import Request

from desk.auth.principals import StaffPrincipal
from desk.domain.states import Role, is_staff_manager
from desk.web.pages._common import Halt, checked_post, error_page, signed_in

FOR_MANAGERS = "This page is for supervisors and admins."
FOR_ADMINS = "This page is for admins."


def _allowed(request: Request, who: StaffPrincipal, admins_only: bool) -> StaffPrincipal:
    if not (who.role == Role.ADMIN if admins_only else is_staff_manager(who.role)):
        raise Halt(error_page(request, 403, FOR_ADMINS if admins_only else FOR_MANAGERS, "Not allowed"))
    return who


async def manager(request: Request) -> StaffPrincipal:
    return _allowed(request, await signed_in(request), admins_only=False)


async def admin(request: Request) -> StaffPrincipal:
    return _allowed(request, await signed_in(request), admins_only=True)


async def manager_post(request: Request) -> tuple[StaffPrincipal, dict[str, str]]:
    who, form = await checked_post(request)
    return _allowed(request, who, admins_only=False), form


async def admin_post(request: Request) -> tuple[StaffPrincipal, dict[str, str]]:
    who, form = await checked_post(request)
    return _allowed(request, who, admins_only=True), form
