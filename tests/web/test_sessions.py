"""Server-side staff sessions: rotated on login, ended by logout wherever the cookie was copied, and every socket
of a session (or, on deactivation, of the user) closed at once; the Origin allowlist for sockets and forms."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests._support import (
    RECV_TIMEOUT_S,
    Desk,
    ServerPool,
    close_code_after,
    context_bundle,
    desk_cli,
    escalate,
    ok,
)
from tests.web.test_pages import Browser, browser, csrf_field
from tests.web.test_ui_socket import open_ui

CLOSE_SIGNED_OUT = 4401
CLOSE_RECONNECT = 1012


async def _logout(page: Browser) -> None:
    response = await page.client.post("/logout", data={"csrf_token": page.csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_a_copied_cookie_is_worthless_after_logout(module_desk: Desk) -> None:
    agent = module_desk.staff("agent")
    async with browser(module_desk.server, agent) as page:
        assert (await page.get("/session")).status_code == 204
        stolen = page.client.cookies.get("desk_session")
        assert stolen
        await _logout(page)
    async with httpx.AsyncClient(base_url=module_desk.server.url, cookies={"desk_session": stolen}) as thief:
        response = await thief.get("/desk")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")
        assert (await thief.get("/session")).status_code == 401


async def test_the_session_cookie_is_http_only_and_same_site_lax(module_desk: Desk) -> None:
    agent = module_desk.staff("agent")
    async with httpx.AsyncClient(base_url=module_desk.server.url) as client:
        form = await client.get("/login")
        response = await client.post(
            "/login", data={"email": agent.email, "password": agent.password, "csrf_token": csrf_field(form.text)}
        )
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie, "plain http here: a Secure cookie would never come back"


async def test_secure_cookie_behind_https(database_url: str, server: ServerPool) -> None:
    desk = Desk(server(database_url, env={"DESK_PUBLIC_URL": "https://desk.example"}))
    async with httpx.AsyncClient(base_url=desk.server.url) as client:
        response = await client.get("/login")
        assert "secure" in response.headers["set-cookie"].lower()


async def test_logout_closes_that_sessions_sockets_and_not_the_others(module_desk: Desk) -> None:
    agent = module_desk.staff("agent")
    async with browser(module_desk.server, agent) as laptop, browser(module_desk.server, agent) as tablet:
        async with open_ui(laptop) as laptop_socket, open_ui(tablet) as tablet_socket:
            await _logout(laptop)
            assert await close_code_after(laptop_socket.ws) == CLOSE_SIGNED_OUT
            # The tablet's session lives on: its socket still gets the queue.
            async with module_desk.api(module_desk.integration().token) as ai:
                handoff = await escalate(ai, context_bundle())
            await tablet_socket.until(lambda f: handoff["conversation_id"] in f, "the tablet still live")
        assert (await tablet.get("/session")).status_code == 204


async def test_logout_closes_the_staff_socket_opened_with_the_cookie(module_desk: Desk) -> None:
    agent = module_desk.staff("agent")
    async with (
        browser(module_desk.server, agent) as page,
        connect(
            f"{module_desk.server.ws_url}/ws/staff",
            additional_headers={"Cookie": page.cookie_header()},
            origin=Origin(module_desk.server.url),
            open_timeout=RECV_TIMEOUT_S,
            proxy=None,
        ) as ws,
    ):
        await _logout(page)
        assert await close_code_after(ws) == CLOSE_SIGNED_OUT


async def test_deactivation_signs_the_user_out_everywhere_at_once(desk: Desk) -> None:
    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page, open_ui(page) as ui:
        async with desk.staff_socket(agent.token) as api_socket:
            # From another process (the CLI): the server hears of it from the event row it wrote.
            deactivated = desk_cli(desk.database_url, "user", "deactivate", "--email", agent.email)
            assert deactivated.returncode == 0, deactivated.stderr
            assert await close_code_after(ui.ws) == CLOSE_SIGNED_OUT
            assert await close_code_after(api_socket.ws) == CLOSE_SIGNED_OUT
        assert (await page.get("/session")).status_code == 401
    async with desk.api(agent.token) as api:
        assert (await api.get("/api/v1/queue")).status_code == 401
    # And the handshake of a new socket is refused.
    async with browser(desk.server) as anonymous:
        anonymous.client.cookies.update(page.client.cookies)
        with pytest.raises(InvalidStatus):
            async with open_ui(anonymous):
                pass


async def test_a_role_change_makes_open_pages_reconnect_with_the_new_rights(desk: Desk) -> None:
    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page, open_ui(page) as ui:
        result = desk_cli(desk.database_url, "user", "update", "--email", agent.email, "--role", "supervisor")
        assert result.returncode == 0, result.stderr
        assert await close_code_after(ui.ws) == CLOSE_RECONNECT
        async with open_ui(page):
            pass  # reconnects fine


async def test_sockets_and_forms_from_an_allowed_origin(database_url: str, server: ServerPool) -> None:
    allowed = "https://agents.example"
    desk = Desk(server(database_url, env={"DESK_ALLOWED_ORIGINS": f"{allowed}, https://other.example"}))
    agent = desk.staff("agent")
    async with browser(desk.server, agent) as page:
        async with open_ui(page, origin=allowed):
            pass
        with pytest.raises(InvalidStatus) as refused:
            async with open_ui(page, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        handoff = await _queued(desk)
        evil = await page.htmx_post(f"/desk/conversations/{handoff}/claim", Origin="https://evil.example")
        assert evil.status_code == 403
        good = await page.htmx_post(f"/desk/conversations/{handoff}/claim", Origin=allowed)
        assert good.status_code == 200


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(module_desk: Desk) -> None:
    agent = module_desk.staff("agent")
    handoff = await _queued(module_desk)
    async with browser(module_desk.server, agent) as page:
        no_token = await page.client.post(f"/desk/conversations/{handoff}/claim", headers={"HX-Request": "true"})
        assert no_token.status_code == 403
        forged = await page.client.post(
            f"/desk/conversations/{handoff}/claim", headers={"HX-Request": "true", "X-CSRF-Token": "forged"}
        )
        assert forged.status_code == 403
        no_logout = await page.client.post("/logout", data={})
        assert no_logout.status_code == 403
        assert (await page.get("/session")).status_code == 204
    async with module_desk.api(agent.token) as api:
        conversation = ok(await api.get(f"/api/v1/conversations/{handoff}"))
        assert conversation["status"] == "queued"


async def _queued(desk: Desk) -> str:
    async with desk.api(desk.integration().token) as ai:
        handoff = await escalate(ai, context_bundle())
    conversation_id: str = handoff["conversation_id"]
    return conversation_id
