"""Admin: staff accounts. List, create, change name, role, skills and capacity, deactivate and reactivate.

Plain forms, answered with a redirect (post/redirect/get); a refused form comes back with what was typed (never the
password) and a message beside each field.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from desk.actions import staff
from desk.auth.principals import StaffPrincipal
from desk.domain.states import Role
from desk.errors import Conflict, NotFound, ValidationFailed
from desk.store.models import User
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route
from desk.web.pages._formats import FORMATS
from desk.web.pages._roles import admin, admin_post
from desk.web.security import csrf_token

ROLES = tuple(role.value for role in Role)
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320
MAX_PASSWORD_CHARS = 1024
MAX_SKILLS = 20
MAX_SKILL_CHARS = 64
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
KEPT = ("name", "email", "role", "skills", "capacity")
NOTICES = {
    "created": "Staff member created.",
    "updated": "Changes saved.",
    "deactivated": "Deactivated: they are signed out everywhere.",
    "reactivated": "Reactivated: they can sign in again.",
}


def _skills(raw: str, errors: dict[str, str]) -> list[str]:
    skills = list(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    if len(skills) > MAX_SKILLS or any(len(s) > MAX_SKILL_CHARS for s in skills):
        errors["skills"] = f"at most {MAX_SKILLS} skills of {MAX_SKILL_CHARS} characters, separated by commas"
    return skills


def _capacity(raw: str, errors: dict[str, str]) -> int:
    try:
        capacity = int(raw.strip())
    except ValueError:
        capacity = -1
    if not 0 <= capacity <= staff.MAX_CAPACITY:
        errors["capacity"] = f"a whole number from 0 to {staff.MAX_CAPACITY}"
    return capacity


def checked_user(form: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """The fields of the create (or edit) form, or ValidationFailed naming every field that is wrong."""
    errors: dict[str, str] = {}
    name = form.get("name", "").strip()
    if not name or len(name) > MAX_NAME_CHARS:
        errors["name"] = f"1 to {MAX_NAME_CHARS} characters"
    if form.get("role") not in ROLES:
        errors["role"] = "agent, supervisor or admin"
    values: dict[str, Any] = {
        "name": name,
        "role": form.get("role"),
        "skills": _skills(form.get("skills", ""), errors),
        "capacity": _capacity(form.get("capacity", ""), errors),
    }
    if creating:
        email, password = form.get("email", "").strip(), form.get("password", "")
        if len(email) > MAX_EMAIL_CHARS or not EMAIL.fullmatch(email):
            errors["email"] = "an email address like ada@example.com"
        if not staff.MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            errors["password"] = f"at least {staff.MIN_PASSWORD_CHARS} characters"
        values.update(email=email, password=password)
    if errors:
        raise ValidationFailed("Check the highlighted fields.", fields=errors)
    return values


def _refusal(exc: ValidationFailed | Conflict) -> dict[str, str]:
    if exc.code == "email_taken":
        return {"email": "already used by another staff member"}
    return exc.fields or {}


async def _list(
    request: Request,
    who: StaffPrincipal,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    users = await runtime(request).call(staff.list_users)
    return page(
        request,
        "admin_users.html",
        status,
        me=who,
        csrf=csrf_token(request),
        users=users,
        roles=ROLES,
        form=form or {"role": "agent", "capacity": "3"},
        errors=errors or {},
        error=error,
        notice=NOTICES.get(request.query_params.get("done", "")),
        **FORMATS,
    )


@page_route
async def users_page(request: Request) -> Response:
    return await _list(request, await admin(request))


@page_route
async def create(request: Request) -> Response:
    who, form = await admin_post(request)
    try:
        values = checked_user(form, creating=True)
        # Hashing the password is slow: off the database thread.
        await runtime(request).call_slow(staff.create_user, **values, by=who)
    except (ValidationFailed, Conflict) as exc:
        kept = {key: form.get(key, "") for key in KEPT}
        return await _list(request, who, status=exc.status, form=kept, errors=_refusal(exc), error=exc.message)
    return RedirectResponse("/admin/users?done=created", status_code=303)


async def _user(request: Request) -> User:
    user_id = request.path_params["id"]
    found = next((u for u in await runtime(request).call(staff.list_users) if u.id == user_id), None)
    if found is None:
        raise NotFound("No such staff member.")
    return found


@page_route
async def edit_page(request: Request) -> Response:
    who = await admin(request)
    user = await _user(request)
    form = {"name": user.name, "role": user.role, "skills": ", ".join(user.skills), "capacity": str(user.capacity)}
    return page(request, "admin_user.html", me=who, csrf=csrf_token(request), user=user, roles=ROLES, form=form)


@page_route
async def update(request: Request) -> Response:
    who, form = await admin_post(request)
    user = await _user(request)
    try:
        values = checked_user(form, creating=False)
        await runtime(request).call(staff.update_user, by=who, user_id=user.id, **values)
    except (ValidationFailed, Conflict) as exc:
        kept = {key: form.get(key, "") for key in KEPT}
        context: dict[str, Any] = {
            "user": user,
            "roles": ROLES,
            "form": kept,
            "errors": _refusal(exc),
            "error": exc.message,
        }
        return page(request, "admin_user.html", exc.status, me=who, csrf=csrf_token(request), **context)
    return RedirectResponse("/admin/users?done=updated", status_code=303)


async def _set_active(request: Request, active: bool) -> Response:
    who, _ = await admin_post(request)
    move = staff.reactivate_user if active else staff.deactivate_user
    try:
        await runtime(request).call(move, by=who, user_id=request.path_params["id"])
    except Conflict as exc:
        return await _list(request, who, status=exc.status, error=exc.message)
    return RedirectResponse(f"/admin/users?done={'reactivated' if active else 'deactivated'}", status_code=303)


@page_route
async def deactivate(request: Request) -> Response:
    return await _set_active(request, False)


@page_route
async def reactivate(request: Request) -> Response:
    return await _set_active(request, True)


ROUTES: list[BaseRoute] = [
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users", create, methods=["POST"]),
    Route("/admin/users/{id:hexid}", edit_page, methods=["GET"]),
    Route("/admin/users/{id:hexid}", update, methods=["POST"]),
    Route("/admin/users/{id:hexid}/deactivate", deactivate, methods=["POST"]),
    Route("/admin/users/{id:hexid}/reactivate", reactivate, methods=["POST"]),
]
