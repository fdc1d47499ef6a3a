"""A desk with something on every page, and hostile text in every field a page shows: customer name, email and
attributes, the bundle (summary, classification, recommended actions, transcript), messages, notes, agent names,
canned replies. Used by the page-wide markup tests and the browser's XSS and layout tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests._support import Desk, Staff, claim, context_bundle, escalate, ok, outcome, post_message

# Each payload would set window.__pwned, open a dialog, or make htmx act, if it ever ran or became markup.
XSS = [
    "<img src=x onerror=\"window.__pwned='img';alert('img')\">",
    "<script>window.__pwned='script';alert('script')</script>",
    '"><svg onload="window.__pwned=\'svg\'">',
    '<div hx-get="/logout" hx-trigger="load">htmx</div>',
    "{{7*7}} ${7*7} javascript:alert(1)",
]
# Bidi override: without care, "\u202eAgent Smith" would render reversed, and disguise what follows.
DISGUISED_NAME = "\u202eevil\u200b" + XSS[0]


@dataclass(frozen=True)
class Seeded:
    admin: Staff
    agent: Staff
    queued_id: str
    assigned_id: str
    finished_id: str
    customer_token: str


def hostile(label: str) -> str:
    return f"{label} " + " ".join(XSS)


async def seed(desk: Desk) -> Seeded:
    admin = desk.staff("admin", name="Admin " + XSS[2])
    agent = desk.staff("agent", name=DISGUISED_NAME)
    integration = desk.integration()
    bundle_overrides: dict[str, Any] = {
        "customer": {
            "external_id": "crm-" + XSS[3],
            "name": "Customer \u202e" + XSS[0],
            "email": "mallory@example.com",
            "attributes": {XSS[0]: XSS[1], "plan": XSS[2]},
        },
        "summary": hostile("Summary"),
        "classification": {"intent": XSS[0], "topics": [XSS[1], "billing"]},
        "recommended_actions": [
            {"kind": "reply", "title": "Title " + XSS[1], "body": hostile("Body"), "confidence": 0.7},
            {"kind": "link", "title": "Docs", "body": "javascript:alert('link')", "confidence": 0.2},
        ],
        "reason": {"code": "low_confidence", "detail": hostile("Detail"), "confidence": 0.3},
        "transcript": [{"role": "customer", "text": hostile("Transcript"), "at": "2026-11-25T10:00:00Z"}],
    }
    async with desk.api(integration.token) as ai:
        queued = await escalate(ai, context_bundle(**bundle_overrides))
        assigned = await escalate(ai, context_bundle(**bundle_overrides))
        finished = await escalate(ai, context_bundle(**bundle_overrides))
    async with desk.api(agent.token) as staff:
        for handoff in (assigned, finished):
            await claim(staff, handoff["conversation_id"])
            await post_message(staff, handoff["conversation_id"], hostile("Reply"))
            await post_message(staff, handoff["conversation_id"], hostile("Note"), internal=True)
        resolved = await staff.post(
            f"/api/v1/conversations/{finished['conversation_id']}/resolve",
            json=outcome(resolution=hostile("Resolution"), note_for_ai=hostile("Lesson"), tags=[XSS[0]]),
        )
        ok(resolved)
    async with desk.chat(assigned["customer_token"]) as customer:
        await customer.say(hostile("Customer says"))
    return Seeded(
        admin=admin,
        agent=agent,
        queued_id=queued["conversation_id"],
        assigned_id=assigned["conversation_id"],
        finished_id=finished["conversation_id"],
        customer_token=assigned["customer_token"],
    )
