"""The admin pages: staff accounts and integrations (admins), canned replies (supervisors and admins). Who may use
them, what they change (checked through the API and by signing in), validation that keeps what was typed, secrets
shown once, and everything user-supplied shown as text."""

from __future__ import annotations

import secrets

from tests._support import PASSWORD, Desk, error_of, ok
from tests.web.test_floor_page import texts
from tests.web.test_pages import XSS_NAME, XSS_TEXT, Browser, assert_no_inline_code, browser

TOKEN_FIELD = 'id="new-token" class="secret" readonly value="'
SECRET_FIELD = 'id="new-webhook-secret" class="secret" readonly value="'


async def _post(page: Browser, path: str, data: dict[str, str] | None = None) -> str:
    """A plain form post with the session's CSRF token, answered with a redirect: where it went."""
    response = await page.client.post(path, data={**(data or {}), "csrf_token": page.csrf})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def _shown_once(page: str) -> tuple[str, str]:
    token = page.split(TOKEN_FIELD)[1].split('"')[0]
    secret = page.split(SECRET_FIELD)[1].split('"')[0]
    assert token.startswith("dski_"), token
    assert secret.startswith("whsec_"), secret
    return token, secret


def _new_user(name: str, **overrides: str) -> dict[str, str]:
    email = f"new-{secrets.token_hex(4)}@example.com"
    form = {"name": name, "email": email, "role": "agent", "skills": "billing, returns", "capacity": "4"}
    return {**form, "password": PASSWORD, **overrides}


# --- who may use them ---------------------------------------------------------------------------------------------


async def test_admin_pages_from_every_side(module_desk: Desk) -> None:
    desk = module_desk
    agent, supervisor, admin = desk.staff("agent"), desk.staff("supervisor"), desk.staff("admin")
    admin_only, managers = ("/admin/users", "/admin/integrations"), ("/admin/canned-replies",)
    async with browser(desk.server) as anonymous:
        for path in admin_only + managers:
            response = await anonymous.get(path)
            assert (response.status_code, response.headers["location"]) == (303, f"/login?next={path}")
            assert (await anonymous.client.post(path, data={"name": "x"})).status_code == 303
    async with browser(desk.server, agent) as page:
        for path in admin_only + managers:
            assert (await page.get(path)).status_code == 403, path
            assert (await page.client.post(path, data={"csrf_token": page.csrf, "title": "t"})).status_code == 403
    async with browser(desk.server, supervisor) as page:
        for path in admin_only:
            assert (await page.get(path)).status_code == 403, path
        refused = await page.client.post("/admin/users", data={**_new_user("Sneaky"), "csrf_token": page.csrf})
        assert refused.status_code == 403
        assert (await page.get("/admin/canned-replies")).status_code == 200
    async with browser(desk.server, admin) as page:
        for path in admin_only + managers:
            shown = await page.get(path)
            assert shown.status_code == 200, path
            assert shown.headers["cache-control"] == "no-store"
            assert_no_inline_code(shown.text)
        assert "Sneaky" not in (await page.get("/admin/users")).text


# --- staff ----------------------------------------------------------------------------------------------------------


async def test_create_a_staff_member_who_can_then_sign_in(module_desk: Desk) -> None:
    desk = module_desk
    admin = desk.staff("admin")
    form = _new_user(XSS_NAME)
    async with browser(desk.server, admin) as page:
        assert await _post(page, "/admin/users", form) == "/admin/users?done=created"
        listing = await page.get("/admin/users?done=created")
        assert "Staff member created." in listing.text
        assert XSS_NAME not in listing.text
        assert "&lt;script&gt;alert(" in listing.text
        assert_no_inline_code(listing.text)
    async with browser(desk.server) as newcomer:
        assert (await newcomer.login(form["email"], PASSWORD)).status_code == 303
    async with desk.api() as api:
        session = ok(await api.post("/api/v1/auth/token", json={"email": form["email"], "password": PASSWORD}))
        assert session["user"]["role"] == "agent"


async def test_refused_staff_forms_keep_what_was_typed_but_the_password(module_desk: Desk) -> None:
    desk = module_desk
    admin, taken = desk.staff("admin"), desk.staff("agent")
    async with browser(desk.server, admin) as page:

        async def refused(status: int, field: str, **changes: str) -> str:
            form = _new_user("Typed Name", **changes)
            response = await page.client.post("/admin/users", data={**form, "csrf_token": page.csrf})
            assert response.status_code == status, (changes, response.text[:300])
            assert texts(response.text).get(f"error-{field}"), (field, response.text[:2000])
            assert 'value="Typed Name"' in response.text
            assert form["password"] not in response.text
            return response.text

        await refused(422, "password", password="short")
        await refused(409, "email", email=taken.email.upper())
        await refused(422, "capacity", capacity="lots")
        await refused(422, "capacity", capacity="101")
        await refused(422, "email", email="not an email")
        await refused(422, "role", role="owner")
        body = await refused(422, "skills", skills=",".join(f"skill{i}" for i in range(30)))
        assert "skill29" in body  # what was typed comes back
        no_csrf = await page.client.post("/admin/users", data=_new_user("No Token"))
        assert no_csrf.status_code == 403
        assert "Typed Name" not in (await page.get("/admin/users")).text
        assert "No Token" not in (await page.get("/admin/users")).text


async def test_change_role_skills_and_capacity(module_desk: Desk) -> None:
    desk = module_desk
    admin, agent = desk.staff("admin"), desk.staff("agent")
    async with browser(desk.server, admin) as page:
        edit = await page.get(f"/admin/users/{agent.id}")
        assert edit.status_code == 200
        assert f'value="{agent.name}"' in edit.text
        changes = {"name": "Renamed Person", "role": "supervisor", "skills": "vip, billing", "capacity": "7"}
        assert await _post(page, f"/admin/users/{agent.id}", changes) == "/admin/users?done=updated"
        row = texts((await page.get("/admin/users")).text)[f"user-{agent.id}"]
        assert "Renamed Person" in row
        assert "supervisor" in row
        assert "vip" in row
        assert " 7 " in f" {row} "
        bad = await page.client.post(
            f"/admin/users/{agent.id}", data={**changes, "capacity": "-1", "csrf_token": page.csrf}
        )
        assert bad.status_code == 422
        assert texts(bad.text)["error-capacity"]
        own = await page.client.post(f"/admin/users/{admin.id}", data={**changes, "csrf_token": page.csrf})
        assert own.status_code == 409
        assert "own admin role" in own.text
        assert (await page.get(f"/admin/users/{'0' * 32}")).status_code == 404
    async with desk.api() as api:
        session = ok(await api.post("/api/v1/auth/token", json={"email": agent.email, "password": PASSWORD}))
        assert session["user"] == {"id": agent.id, "name": "Renamed Person", "role": "supervisor"}


async def test_deactivation_ends_tokens_and_sessions_and_reactivation_restores_sign_in(module_desk: Desk) -> None:
    desk = module_desk
    admin, agent = desk.staff("admin"), desk.staff("agent")
    async with browser(desk.server, agent) as victim, browser(desk.server, admin) as page, desk.api(agent.token) as api:
        ok(await api.get("/api/v1/queue"))
        assert (await victim.get("/desk")).status_code == 200
        assert await _post(page, f"/admin/users/{agent.id}/deactivate") == "/admin/users?done=deactivated"
        error_of(await api.get("/api/v1/queue"), 401, "unauthorized")
        signed_out = await victim.get("/desk")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/login")
        assert "deactivated" in texts((await page.get("/admin/users")).text)[f"user-{agent.id}"]
        async with browser(desk.server) as again:
            assert (await again.login(agent.email, PASSWORD)).status_code == 401

        assert await _post(page, f"/admin/users/{agent.id}/reactivate") == "/admin/users?done=reactivated"
        async with browser(desk.server) as again:
            assert (await again.login(agent.email, PASSWORD)).status_code == 303

        yourself = await page.client.post(f"/admin/users/{admin.id}/deactivate", data={"csrf_token": page.csrf})
        assert yourself.status_code == 409
        assert "cannot deactivate yourself" in yourself.text


# --- integrations -------------------------------------------------------------------------------------------------


async def test_an_integration_token_is_shown_once_and_works(module_desk: Desk) -> None:
    desk = module_desk
    admin = desk.staff("admin")
    async with browser(desk.server, admin) as page:
        form = {"name": XSS_NAME, "webhook_url": "https://ai.example.com/hook", "fallback_webhook_url": ""}
        created = await page.client.post("/admin/integrations", data={**form, "csrf_token": page.csrf})
        assert created.status_code == 200
        assert created.headers["cache-control"] == "no-store"
        assert "shown only this once" in created.text
        assert XSS_NAME not in created.text
        assert_no_inline_code(created.text)
        token, secret = _shown_once(created.text)
        integration_id = created.text.split('href="/admin/integrations/')[1].split('"')[0]

        listing = await page.get("/admin/integrations")
        manage = await page.get(f"/admin/integrations/{integration_id}")
        for later in (listing, manage):
            assert token not in later.text
            assert secret not in later.text
        assert "https://ai.example.com/hook" in texts(listing.text)[f"integration-{integration_id}"]
    async with desk.api(token) as ai:
        ok(await ai.get("/api/v1/events", params={"after": 0, "wait": 0}))


async def test_webhook_urls_rotation_and_deactivation(module_desk: Desk) -> None:
    desk = module_desk
    admin, supervisor = desk.staff("admin"), desk.staff("supervisor")
    integration = desk.integration()
    base = f"/admin/integrations/{integration.id}"
    async with browser(desk.server, admin) as page:
        for bad in ("javascript:alert(1)", "ftp://files.example.com/x", "not a url", "https://"):
            refused = await page.client.post(base, data={"webhook_url": bad, "csrf_token": page.csrf})
            assert refused.status_code == 422, bad
            assert texts(refused.text)["error-webhook_url"]
        new_url = {
            "webhook_url": "https://crm.example.com/desk?a=1&b=2",
            "fallback_webhook_url": "http://backup.local/x",
        }
        assert await _post(page, base, new_url) == f"{base}?done=updated"
        shown = (await page.get(base)).text
        assert 'value="https://crm.example.com/desk?a=1&amp;b=2"' in shown
        assert 'value="http://backup.local/x"' in shown
        refused_create = await page.client.post(
            "/admin/integrations", data={"name": "Typed", "webhook_url": "javascript:alert(1)", "csrf_token": page.csrf}
        )
        assert refused_create.status_code == 422
        assert 'value="Typed"' in refused_create.text

        rotated = await page.client.post(f"{base}/rotate", data={"csrf_token": page.csrf})
        assert rotated.status_code == 200
        token, _ = _shown_once(rotated.text)
        assert "The previous token no longer works" in rotated.text
        async with desk.api(integration.token) as old, desk.api(token) as new:
            error_of(await old.get("/api/v1/events", params={"after": 0, "wait": 0}), 401, "unauthorized")
            ok(await new.get("/api/v1/events", params={"after": 0, "wait": 0}))

            assert await _post(page, f"{base}/deactivate") == f"{base}?done=deactivated"
            error_of(await new.get("/api/v1/events", params={"after": 0, "wait": 0}), 401, "unauthorized")
            assert await _post(page, f"{base}/reactivate") == f"{base}?done=reactivated"
            ok(await new.get("/api/v1/events", params={"after": 0, "wait": 0}))
        assert (await page.get(f"/admin/integrations/{'0' * 32}")).status_code == 404
        missing = await page.client.post(f"/admin/integrations/{'0' * 32}/rotate", data={"csrf_token": page.csrf})
        assert missing.status_code == 404
    async with browser(desk.server, supervisor) as page:
        for path in (base, f"{base}/rotate", f"{base}/deactivate"):
            response = await page.client.post(path, data={"webhook_url": "", "csrf_token": page.csrf})
            assert response.status_code == 403, path
    async with desk.api(token) as still:
        ok(await still.get("/api/v1/events", params={"after": 0, "wait": 0}))


# --- canned replies -----------------------------------------------------------------------------------------------


async def test_supervisors_keep_the_canned_replies(module_desk: Desk) -> None:
    desk = module_desk
    supervisor, agent = desk.staff("supervisor"), desk.staff("agent")
    title = f"Refund {secrets.token_hex(3)} {XSS_NAME}"
    async with browser(desk.server, supervisor) as page:
        created = await _post(page, "/admin/canned-replies", {"title": title, "body": XSS_TEXT})
        assert created == "/admin/canned-replies?done=created"
        listing = (await page.get("/admin/canned-replies")).text
        assert XSS_NAME not in listing
        assert XSS_TEXT not in listing
        assert "&lt;img src=x onerror=alert(1)&gt;" in listing
        assert_no_inline_code(listing)
        canned_id = listing.split('<li id="canned-')[1].split('"')[0]
        assert len(canned_id) == 32

        empty = await page.client.post(
            f"/admin/canned-replies/{canned_id}", data={"title": " ", "body": "Kept text", "csrf_token": page.csrf}
        )
        assert empty.status_code == 422
        assert "Kept text</textarea>" in empty.text
        assert texts(empty.text)["error-title"]
        edited = await _post(page, f"/admin/canned-replies/{canned_id}", {"title": "Shipping", "body": "On its way."})
        assert edited == "/admin/canned-replies?done=updated"
        assert "On its way." in texts((await page.get("/admin/canned-replies")).text)[f"canned-{canned_id}"]

        no_csrf = await page.client.post(f"/admin/canned-replies/{canned_id}/delete")
        assert no_csrf.status_code == 403
        async with browser(desk.server, agent) as agent_page:
            grab = await agent_page.client.post(
                f"/admin/canned-replies/{canned_id}/delete", data={"csrf_token": agent_page.csrf}
            )
            assert grab.status_code == 403
        assert await _post(page, f"/admin/canned-replies/{canned_id}/delete") == "/admin/canned-replies?done=deleted"
        assert f"canned-{canned_id}" not in (await page.get("/admin/canned-replies")).text
        gone = await page.client.post(f"/admin/canned-replies/{canned_id}/delete", data={"csrf_token": page.csrf})
        assert gone.status_code == 404
