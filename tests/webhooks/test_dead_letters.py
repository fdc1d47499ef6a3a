"""Webhook dead letters: a receiver that refuses an event for good (a 3xx, or a 4xx other than 408 and 429) gets it
once, the desk records it and delivers the rest in order; admins see it and replay it, through the JSON API and
the admin page; nobody else can, and their attempts send nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from markupsafe import escape
from sqlmodel import select

from desk.store.db import Database
from desk.store.models import AuditEntry
from tests._support import Desk, Integration, Json, Staff, assert_timestamp, create_conversation, error_of, ok
from tests.web.test_pages import assert_no_inline_code, browser
from tests.webhooks.test_delivery import (
    Answer,
    Received,
    Receiver,
    _collect,
    assert_signed,
    first_arrivals,
    hand_over_and_back,
    is_delivery_of,
    serving,
)

XSS_REASON = '<script>alert("reason")</script>Refused'
ITEM_FIELDS = {
    "id",
    "integration_id",
    "event_id",
    "event_type",
    "conversation_id",
    "status_code",
    "error",
    "created_at",
    "replayed_at",
    "replay_status",
}
UNKNOWN_ID = "0" * 32


@pytest.fixture(scope="module")
def people(module_desk: Desk) -> dict[str, Staff]:
    return {role: module_desk.staff(role) for role in ("agent", "supervisor", "admin")}


@dataclass
class Refused:
    integration: Integration
    conversation_id: str
    delivery: Received
    seen: list[Received]

    @property
    def event_id(self) -> int:
        return int(self.delivery.headers["desk-event-id"])


async def refuse_one(desk: Desk, receiver: Receiver, agent: Staff, answer: Answer) -> Refused:
    """A conversation's three events, the first answered with `answer`; returns once the last one has arrived."""
    integration = desk.integration(webhook_url=receiver.url)
    async with desk.api(integration.token) as ai, desk.api(agent.token) as staff:
        conversation_id = (await create_conversation(ai))["id"]
        receiver.plan[(conversation_id, "handoff.created")] = [answer]
        await hand_over_and_back(ai, staff, conversation_id)
        seen = await _collect(receiver, lambda r: is_delivery_of(r, conversation_id, "control.returned"))
    tries = [r for r in seen if is_delivery_of(r, conversation_id, "handoff.created")]
    assert len(tries) == 1, f"a refused event was sent {len(tries)} times"
    return Refused(integration, conversation_id, tries[0], seen)


async def listed(desk: Desk, admin: Staff, integration_id: str) -> list[Json]:
    async with desk.api(admin.token) as client:
        items = ok(await client.get("/api/v1/admin/dead-letters", params={"integration_id": integration_id}))["items"]
    assert isinstance(items, list)
    return items


@pytest.mark.parametrize("status", [400, 404, 410, 307])
async def test_a_refused_event_is_dead_lettered_and_delivery_moves_on(
    module_desk: Desk, people: dict[str, Staff], status: int
) -> None:
    with serving(Receiver()) as receiver:
        moved = {"Location": receiver.url + "/moved"} if status == 307 else {}
        refused = await refuse_one(module_desk, receiver, people["agent"], Answer(status, moved))
    assert all(r.path == "/hook" for r in refused.seen), "a redirect was followed"
    types = [r.json["type"] for r in first_arrivals(refused.seen).values()]
    assert types == ["handoff.created", "handoff.claimed", "control.returned"], types
    [item] = await listed(module_desk, people["admin"], refused.integration.id)
    assert set(item) == ITEM_FIELDS, item
    assert item["integration_id"] == refused.integration.id
    assert item["event_id"] == refused.event_id
    assert item["event_type"] == "handoff.created"
    assert item["conversation_id"] == refused.conversation_id
    assert item["status_code"] == status
    assert str(status) in item["error"]
    if status == 307:
        assert "redirects are not followed" in item["error"]
    assert_timestamp(item["created_at"])
    assert (item["replayed_at"], item["replay_status"]) == (None, None)


def _replay_audits(database_url: str, dead_letter_id: str) -> list[AuditEntry]:
    db = Database(database_url)
    try:
        with db.read() as session:
            rows = session.exec(select(AuditEntry).where(AuditEntry.action == "webhook.replay")).all()
    finally:
        db.dispose()
    return [row for row in rows if row.detail.get("dead_letter_id") == dead_letter_id]


async def test_admins_replay_a_dead_letter_through_the_api_and_the_page(
    module_desk: Desk, people: dict[str, Staff]
) -> None:
    desk, admin = module_desk, people["admin"]
    with serving(Receiver()) as receiver:
        refused = await refuse_one(desk, receiver, people["agent"], Answer(400, reason=XSS_REASON))
        [item] = await listed(desk, admin, refused.integration.id)
        replay_path = f"/api/v1/admin/dead-letters/{item['id']}/replay"
        plan_key = (refused.conversation_id, "handoff.created")

        def replayed() -> Received:
            """The replay has been answered when its request returns: it is in the receiver's queue already."""
            received = receiver.requests.get_nowait()
            assert_signed(received, refused.integration.webhook_secret)
            assert int(received.headers["desk-event-id"]) == refused.event_id
            assert received.body == refused.delivery.body
            return received

        async with desk.api(admin.token) as client:
            receiver.plan[plan_key] = [Answer(503)]
            failed = ok(await client.post(replay_path))
            replayed()
            assert failed["replay_status"] == 503
            failed_at = assert_timestamp(failed["replayed_at"])
            done = ok(await client.post(replay_path))
            replayed()
            assert done["replay_status"] == 200
            assert assert_timestamp(done["replayed_at"]) >= failed_at
            unchanged = {**done, "replayed_at": None, "replay_status": None}
            assert unchanged == item, "a replay changed more than its outcome"
        assert await listed(desk, admin, refused.integration.id) == [done]

        async with browser(desk.server, admin) as page:
            assert '<a href="/admin/webhooks">' in (await page.get("/desk")).text
            shown = await page.get("/admin/webhooks")
            assert shown.status_code == 200
            assert shown.headers["cache-control"] == "no-store"
            assert_no_inline_code(shown.text)
            assert XSS_REASON not in shown.text
            assert str(escape(XSS_REASON)) in shown.text
            assert f'id="dead-letter-{item["id"]}"' in shown.text
            form_path = f"/admin/webhooks/{item['id']}/replay"
            assert f'action="{form_path}"' in shown.text

            refused_post = await page.client.post(form_path, data={})
            assert refused_post.status_code == 403
            assert receiver.requests.empty(), "a replay without the CSRF token was sent"

            receiver.plan[plan_key] = [Answer(500)]
            failed_post = await page.client.post(form_path, data={"csrf_token": page.csrf})
            assert (failed_post.status_code, failed_post.headers["location"]) == (303, "/admin/webhooks?done=refused")
            replayed()
            posted = await page.client.post(form_path, data={"csrf_token": page.csrf})
            assert (posted.status_code, posted.headers["location"]) == (303, "/admin/webhooks?done=replayed")
            replayed()
            after = await page.get(posted.headers["location"])
            assert "Replayed: the webhook accepted the event." in after.text
            assert "replayed " in after.text.split(f'id="dead-letter-{item["id"]}"')[1].split("</tr>")[0]

    audits = _replay_audits(desk.database_url, item["id"])
    assert [a.detail["status"] for a in sorted(audits, key=lambda a: a.at)] == [503, 200, 500, 200]
    assert {(a.actor_kind, a.actor_id, a.conversation_id) for a in audits} == {
        ("staff", admin.id, refused.conversation_id)
    }


async def test_dead_letters_from_the_wrong_side(module_desk: Desk, people: dict[str, Staff]) -> None:
    desk = module_desk
    with serving(Receiver()) as receiver:
        refused = await refuse_one(desk, receiver, people["agent"], Answer(400))
        [item] = await listed(desk, people["admin"], refused.integration.id)
        api_paths = ("/api/v1/admin/dead-letters", f"/api/v1/admin/dead-letters/{item['id']}/replay")
        page_paths = ("/admin/webhooks", f"/admin/webhooks/{item['id']}/replay")

        async with desk.api() as anonymous:
            error_of(await anonymous.get(api_paths[0]), 401, "unauthorized")
            error_of(await anonymous.post(api_paths[1]), 401, "unauthorized")
        async with desk.api("dski_not-a-token") as forged:
            error_of(await forged.get(api_paths[0]), 401, "unauthorized")
        async with desk.api(refused.integration.token) as ai:
            error_of(await ai.get(api_paths[0]), 403, "forbidden")
            error_of(await ai.post(api_paths[1]), 403, "forbidden")
        for role in ("agent", "supervisor"):
            async with desk.api(people[role].token) as staff:
                error_of(await staff.get(api_paths[0]), 403, "forbidden")
                error_of(await staff.post(api_paths[1]), 403, "forbidden")
                error_of(await staff.post(f"/api/v1/admin/dead-letters/{UNKNOWN_ID}/replay"), 403, "forbidden")
        async with desk.api(people["admin"].token) as admin:
            error_of(await admin.post(f"/api/v1/admin/dead-letters/{UNKNOWN_ID}/replay"), 404, "not_found")
            error_of(await admin.post("/api/v1/admin/dead-letters/not-an-id/replay"), 404, "not_found")
            error_of(await admin.get(api_paths[1]), 405, "method_not_allowed")

        async with browser(desk.server) as anonymous:
            for path in page_paths:
                shown = await anonymous.get(path) if path == page_paths[0] else await anonymous.client.post(path)
                assert (shown.status_code, shown.headers["location"]) == (303, f"/login?next={path}")
        for role in ("agent", "supervisor"):
            async with browser(desk.server, people[role]) as page:
                assert '<a href="/admin/webhooks">' not in (await page.get("/desk")).text
                assert (await page.get(page_paths[0])).status_code == 403
                assert (await page.client.post(page_paths[1], data={"csrf_token": page.csrf})).status_code == 403
        async with browser(desk.server, people["admin"]) as page:
            missing = await page.client.post(f"/admin/webhooks/{UNKNOWN_ID}/replay", data={"csrf_token": page.csrf})
            assert missing.status_code == 404

        assert receiver.requests.empty(), "a refused replay was sent"
    assert await listed(desk, people["admin"], refused.integration.id) == [item]
