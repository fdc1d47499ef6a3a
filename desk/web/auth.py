"""Resolving credentials (CONTRACT.md section 2) from bearer headers, query tokens and session cookies."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from desk.actions.integrations import integration_for_token
from desk.actions.sessions import staff_for_session
from desk.actions.staff import staff_for_token
from desk.auth.principals import IntegrationPrincipal, StaffPrincipal
from desk.errors import Forbidden, Unauthorized
from desk.runtime import Runtime
from desk.web.security import session_id


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


def bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def caller(conn: HTTPConnection) -> StaffPrincipal | IntegrationPrincipal:
    """An integration or a staff member; 401 for anything else (customer tokens are not API credentials)."""
    token = bearer(conn)
    rt = runtime(conn)
    if token is None:
        # Session cookies are not accepted here: the JSON API takes bearer tokens only (no CSRF surface).
        raise Unauthorized("Missing credentials: send Authorization: Bearer <token>.")
    integration = await rt.call(integration_for_token, token)
    if integration is not None:
        return integration
    staff = await rt.call(staff_for_token, token)
    if staff is not None:
        return staff
    raise Unauthorized("Invalid or expired token.")


async def session_staff(conn: HTTPConnection) -> StaffPrincipal | None:
    """The staff member signed in with this cookie, if its server-side session is still open."""
    sid = session_id(conn)
    if not sid:
        return None
    return await runtime(conn).call(staff_for_session, sid)


async def integration(conn: HTTPConnection) -> IntegrationPrincipal:
    who = await caller(conn)
    if not isinstance(who, IntegrationPrincipal):
        raise Forbidden("This endpoint is for integrations (AI agents, automations).")
    return who


async def staff(conn: HTTPConnection) -> StaffPrincipal:
    who = await caller(conn)
    if not isinstance(who, StaffPrincipal):
        raise Forbidden("This endpoint is for staff.")
    return who
