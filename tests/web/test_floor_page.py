"""The supervisor's floor over HTTP: who may open it, what it counts (staff load, queue by skill with SLA risk, the
day's tiles), and reassigning from it, checked through the API."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

from sqlmodel import col, select

from desk.store.db import Database
from desk.store.models import Handoff
from tests._support import Desk, assignee_id, claim, context_bundle, desk_cli, escalate, ok, outcome, read
from tests.web.test_pages import XSS_NAME, assert_no_inline_code, browser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Texts(HTMLParser):
    """The text inside every element with an id (or a `data-skill`), keyed by it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.texts: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        found = dict(attrs)
        skill = found.get("data-skill")
        self.stack.append(found.get("id") or (f"skill:{skill}" if skill is not None else None))

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for key in self.stack:
            if key:
                self.texts.setdefault(key, []).append(data)


def texts(page: str) -> dict[str, str]:
    parser = _Texts()
    parser.feed(page)
    parser.close()
    return {key: " ".join("".join(parts).split()) for key, parts in parser.texts.items()}


def age_handoff(database_url: str, conversation_id: str, seconds: float) -> None:
    """Make a queued handoff `seconds` older (an SLA cannot be waited out in a test)."""
    db = Database(database_url)
    try:
        with db.write() as session:
            handoff = session.exec(
                select(Handoff).where(col(Handoff.conversation_id) == conversation_id, col(Handoff.status) == "queued")
            ).one()
            handoff.created_at -= timedelta(seconds=seconds)
            handoff.sla_due_at -= timedelta(seconds=seconds)
            session.add(handoff)
    finally:
        db.dispose()


async def _queued(desk: Desk, token: str, **overrides: Any) -> str:
    async with desk.api(token) as ai:
        answer = await escalate(ai, context_bundle(**overrides))
    return str(answer["conversation_id"])


# --- who may open it ----------------------------------------------------------------------------------------------


async def test_the_floor_is_for_supervisors_and_admins(module_desk: Desk) -> None:
    desk = module_desk
    agent, supervisor, admin = desk.staff("agent"), desk.staff("supervisor"), desk.staff("admin")
    async with browser(desk.server) as anonymous:
        for path in ("/floor", "/floor/fragment"):
            response = await anonymous.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == f"/login?next={path}"
    async with browser(desk.server, agent) as page:
        refused = await page.get("/floor")
        assert refused.status_code == 403
        assert "for supervisors and admins" in refused.text
        assert 'id="floor"' not in refused.text
        fragment = await page.get("/floor/fragment", **{"HX-Request": "true"})
        assert fragment.status_code == 403
        assert fragment.headers["hx-retarget"] == "#flash"
    for boss in (supervisor, admin):
        async with browser(desk.server, boss) as page:
            shown = await page.get("/floor")
            assert shown.status_code == 200
            assert 'ws-connect="/ws/ui?page=floor"' in shown.text
            assert 'id="floor"' in shown.text
            assert_no_inline_code(shown.text)
            fragment = await page.get("/floor/fragment", **{"HX-Request": "true"})
            assert fragment.text.lstrip().startswith('<section id="floor"')


# --- what it counts -----------------------------------------------------------------------------------------------


async def test_the_floor_counts_load_the_queue_by_skill_and_today(desk: Desk) -> None:
    integration = desk.integration()
    ada = desk.staff("agent", name="Ada Agent", skills=("billing",), capacity=2)
    bob = desk.staff("agent", name="Bob Agent", skills=("returns",))
    boss = desk.staff("supervisor")
    billing_late = await _queued(desk, integration.token, skills=["billing"], priority="high")
    await _queued(desk, integration.token, skills=["billing"], priority="normal")
    returns_near = await _queued(desk, integration.token, skills=["returns"], priority="urgent")
    await _queued(desk, integration.token, skills=[], priority="low")
    async with desk.api(integration.token) as ai, desk.api(ada.token) as ada_api, desk.api(bob.token) as bob_api:
        held = await escalate(ai, context_bundle(skills=["billing"]))
        await claim(ada_api, held["conversation_id"])
        returned = await escalate(ai, context_bundle(skills=["returns"]))
        await claim(bob_api, returned["conversation_id"])
        ok(await bob_api.post(f"/api/v1/conversations/{returned['conversation_id']}/return", json=outcome()))
        left = await escalate(ai, context_bundle(skills=["returns"]))
        ok(await ai.post(f"/api/v1/conversations/{left['conversation_id']}/abandon"))
    age_handoff(desk.database_url, billing_late, 400)  # high: 300 s SLA, so breached
    age_handoff(desk.database_url, returns_near, 100)  # urgent: 120 s SLA, 20 s left: at risk

    async with browser(desk.server, boss) as page:
        body = (await page.get("/floor")).text
    found = texts(body)
    assert found["tile-queued"] == "4 queued now"
    assert found["tile-longest-wait"].startswith("6 min"), found["tile-longest-wait"]
    assert found["tile-claimed"] == "2 claimed today"
    assert found["tile-returned"] == "1 returned to AI today"
    assert found["tile-abandoned"] == "1 abandoned today"

    assert found["skill:billing"].split()[:1] == ["billing"]
    assert found["skill:billing"].split()[1] == "2"  # waiting
    assert found["skill:billing"].split()[-2:] == ["1", "0"]  # breached, at risk
    assert found["skill:returns"].split()[1] == "1"
    assert found["skill:returns"].split()[-2:] == ["0", "1"]
    assert found["skill:"].startswith("any skill 1")
    assert "risk-breached" in body.split('data-skill="billing"')[0].rsplit("<tr", 1)[1]

    assert "1/2" in found[f"floor-staff-{ada.id}"]
    assert "offline" in found[f"floor-staff-{ada.id}"]
    assert "0/3" in found[f"floor-staff-{bob.id}"]
    assert "Ada Agent" in found[f"floor-conversation-{held['conversation_id']}"]
    assert "SLA breached" in found[f"floor-conversation-{billing_late}"]
    assert "SLA at risk" in found[f"floor-conversation-{returns_near}"]
    assert f"floor-conversation-{returned['conversation_id']}" not in found
    assert f'href="/desk/conversations/{held["conversation_id"]}"' in body


async def test_names_on_the_floor_are_text(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    mallory = desk.staff("agent", name=XSS_NAME, skills=('<b hx-get="/logout">x</b>',))
    boss = desk.staff("supervisor")
    customer = {"name": XSS_NAME, "email": "m@example.com", "external_id": "x", "locale": "en", "attributes": {}}
    cid = await _queued(desk, integration.token, customer=customer, skills=["<script>skill</script>"])
    async with desk.api(mallory.token) as staff:
        await claim(staff, cid)
    async with browser(desk.server, boss) as page:
        body = (await page.get("/floor")).text
    assert XSS_NAME not in body
    assert "&lt;script&gt;alert(" in body
    assert "<script>skill" not in body
    assert_no_inline_code(body)


# --- reassigning ----------------------------------------------------------------------------------------------------


async def test_reassign_moves_a_conversation_and_a_queued_one_can_be_assigned(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    ada, bob, boss = (
        desk.staff("agent", name="Ada Held"),
        desk.staff("agent", name="Bob Taker"),
        desk.staff("supervisor"),
    )
    held = await _queued(desk, integration.token)
    waiting = await _queued(desk, integration.token)
    async with desk.api(ada.token) as ada_api, desk.api(boss.token) as boss_api, browser(desk.server, boss) as page:
        await claim(ada_api, held)
        moved = await page.htmx_post(f"/floor/conversations/{held}/assign", {"agent_id": bob.id})
        assert moved.status_code == 200
        assert moved.text.lstrip().startswith('<section id="floor"')
        assert "Assigned to <bdi>Bob Taker</bdi>" in moved.text
        assert "Bob Taker" in texts(moved.text)[f"floor-conversation-{held}"]
        assert assignee_id(await read(boss_api, held)) == bob.id

        assigned = await page.htmx_post(f"/floor/conversations/{waiting}/assign", {"agent_id": ada.id})
        assert assigned.status_code == 200
        conversation = await read(boss_api, waiting)
        assert (conversation["status"], assignee_id(conversation)) == ("assigned", ada.id)

        # Without htmx, a plain form post: back to the floor.
        plain = await page.client.post(
            f"/floor/conversations/{waiting}/assign", data={"agent_id": bob.id, "csrf_token": page.csrf}
        )
        assert (plain.status_code, plain.headers["location"]) == (303, "/floor")
        assert assignee_id(await read(boss_api, waiting)) == bob.id


async def test_reassign_refuses_bad_agents_and_closed_conversations(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    ada, boss = desk.staff("agent"), desk.staff("supervisor")
    gone = desk.staff("agent")
    desk_cli(desk.database_url, "user", "deactivate", "--email", gone.email)
    cid = await _queued(desk, integration.token)
    async with desk.api(ada.token) as ada_api, desk.api(boss.token) as boss_api, browser(desk.server, boss) as page:
        await claim(ada_api, cid)
        for agent_id in (gone.id, "f" * 32, "not-an-id", ""):
            refused = await page.htmx_post(f"/floor/conversations/{cid}/assign", {"agent_id": agent_id})
            assert refused.status_code == 422, agent_id
            assert refused.headers["hx-retarget"] == "#flash"
            assert 'class="error"' in refused.text
        plain = await page.client.post(
            f"/floor/conversations/{cid}/assign", data={"agent_id": gone.id, "csrf_token": page.csrf}
        )
        assert plain.status_code == 422
        assert "No such active staff member" in plain.text
        assert assignee_id(await read(boss_api, cid)) == ada.id

        ok(await boss_api.post(f"/api/v1/conversations/{cid}/resolve", json=outcome()))
        closed = await page.htmx_post(f"/floor/conversations/{cid}/assign", {"agent_id": ada.id})
        assert closed.status_code == 409
        unknown = await page.htmx_post(f"/floor/conversations/{'0' * 32}/assign", {"agent_id": ada.id})
        assert unknown.status_code == 404


async def test_reassign_from_the_wrong_side_or_without_csrf_changes_nothing(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    ada, bob, boss = desk.staff("agent"), desk.staff("agent"), desk.staff("supervisor")
    cid = await _queued(desk, integration.token)
    async with desk.api(ada.token) as ada_api, desk.api(boss.token) as boss_api:
        await claim(ada_api, cid)
        async with browser(desk.server, bob) as agent_page:
            grab = await agent_page.htmx_post(f"/floor/conversations/{cid}/assign", {"agent_id": bob.id})
            assert grab.status_code == 403
        async with browser(desk.server, boss) as page:
            no_token = await page.client.post(f"/floor/conversations/{cid}/assign", data={"agent_id": bob.id})
            assert no_token.status_code == 403
            elsewhere = await page.htmx_post(
                f"/floor/conversations/{cid}/assign", {"agent_id": bob.id}, Origin="https://evil.example"
            )
            assert elsewhere.status_code == 403
        async with browser(desk.server) as anonymous:
            signed_out = await anonymous.client.post(f"/floor/conversations/{cid}/assign", data={"agent_id": bob.id})
            assert signed_out.status_code == 303
        assert assignee_id(await read(boss_api, cid)) == ada.id
