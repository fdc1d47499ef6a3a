"""The conversation workspace over HTTP, driven like a browser: what became of the AI's recommended actions (used,
edited, ignored) in the database, the API and the learning log; transfers to a colleague or a skill, and from the
wrong side; canned replies; the outcome form keeping what was typed; supervisors watching read-only."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from markupsafe import escape

from desk.actions.canned import create_canned
from desk.auth.principals import StaffPrincipal
from desk.store.db import Database
from desk.store.models import Handoff
from tests._support import Desk, Staff, claim, context_bundle, escalate, ok, outcome, read
from tests.web.test_pages import XSS_TEXT, assert_no_inline_code, browser, queued

APOLOGY = "Sorry! I've refunded it."  # the first recommended action of context_bundle()


@contextlib.contextmanager
def database(desk: Desk) -> Iterator[Database]:
    """The desk's own database, to check what it stored (and to seed canned replies, which have no API)."""
    db = Database(desk.database_url)
    try:
        yield db
    finally:
        db.engine.dispose()


def stored_usage(desk: Desk, handoff_id: str) -> dict[str, str]:
    with database(desk) as db, db.read() as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff is not None
        return dict(handoff.recommendation_usage)


async def learning_entry(desk: Desk, staff: Staff, conversation_id: str) -> dict[str, Any]:
    async with desk.api(staff.token) as api:
        entries = ok(await api.get("/api/v1/learning-log"))["items"]
    return next(e for e in entries if e["conversation_id"] == conversation_id)


def option_selected(page: str, select_id: str) -> str | None:
    select = re.search(rf'<select id="{select_id}".*?</select>', page, re.DOTALL)
    assert select, f"no select #{select_id}"
    chosen = re.search(r'<option value="([^"]*)" selected>', select.group(0))
    return chosen.group(1) if chosen else None


# --- recommended actions ---------------------------------------------------------------------------------------


async def test_recommendations_are_recorded_used_edited_and_ignored(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with browser(desk.server, agent) as page:
        shown = (await page.get(base)).text
        for index, key in ((0, "Alt+1"), (1, "Alt+2"), (2, "Alt+3")):
            assert f'data-recommendation="{index}"' in shown
            assert f'aria-keyshortcuts="{key}"' in shown
        assert (await page.htmx_post(f"{base}/claim")).status_code == 200

        # Sent as inserted (whitespace aside): used. The bundle says so, and the outcome forms suggest it.
        sent = {"text": APOLOGY + "\n", "recommendation": "0", "client_id": "r-1"}
        used = await page.htmx_post(f"{base}/reply", sent)
        assert used.status_code == 200, used.text
        assert f'<section id="bundle-{conversation_id}" class="panel bundle" hx-disable' in used.text
        assert 'data-suggested-feedback="used"' in used.text
        assert re.search(r'class="recommendation kind-reply usage-used"', used.text)
        assert 'name="recommendation" value=""' in used.text, "the fresh reply form has no recommendation"
        again = await page.htmx_post(f"{base}/reply", {"text": APOLOGY, "recommendation": "0", "client_id": "r-1"})
        assert again.status_code == 200, "a resend answers with the stored reply"
        assert stored_usage(desk, handoff["handoff_id"]) == {"0": "used"}

        # Changed before sending: edited. A reply that inserted nothing changes nothing.
        edited = {"text": "I ran refund(charge_id) for you.", "recommendation": "1"}
        assert (await page.htmx_post(f"{base}/reply", edited)).status_code == 200
        assert (await page.htmx_post(f"{base}/reply", {"text": "Anything else?"})).status_code == 200
        assert stored_usage(desk, handoff["handoff_id"]) == {"0": "used", "1": "edited"}

        # A made-up index is refused and nothing is lost or sent.
        bad = await page.htmx_post(f"{base}/reply", {"text": "Kept as typed", "recommendation": "0,x"})
        assert bad.status_code == 422
        assert "Kept as typed</textarea>" in bad.text
        assert 'role="alert"' in bad.text

        workspace = (await page.get(base)).text
        assert option_selected(workspace, f"return-{conversation_id}-feedback") == "used"
        assert 'class="usage-state usage-edited"' in workspace
        returned = await page.htmx_post(
            f"{base}/return", {"recommendation_feedback": "used", "resolution": "Refunded", "tags": "refund"}
        )
        assert returned.status_code == 200, returned.text

    assert stored_usage(desk, handoff["handoff_id"]) == {"0": "used", "1": "edited", "2": "ignored"}
    entry = await learning_entry(desk, agent, conversation_id)
    assert entry["recommendation_usage"] == {"0": "used", "1": "edited", "2": "ignored"}
    assert entry["recommendation_feedback"] == "used"
    async with desk.api(agent.token) as api:
        texts = [m["text"] for m in (await read(api, conversation_id))["messages"]]
    assert texts.count(APOLOGY + "\n") == 1
    assert "Kept as typed" not in texts


async def test_recommendations_never_inserted_are_ignored_when_resolved_through_the_api(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    async with desk.api(agent.token) as api:
        await claim(api, conversation_id)
        ok(await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": APOLOGY}), 201)
        ok(await api.post(f"/api/v1/conversations/{conversation_id}/resolve", json=outcome()))
    entry = await learning_entry(desk, agent, conversation_id)
    assert entry["recommendation_usage"] == {"0": "ignored", "1": "ignored", "2": "ignored"}


async def test_no_recommendations_no_usage_and_no_suggestion(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk, recommended_actions=[])
    base = f"/desk/conversations/{handoff['conversation_id']}"
    async with browser(desk.server, agent) as page:
        await page.htmx_post(f"{base}/claim")
        shown = (await page.get(base)).text
        assert 'data-suggested-feedback=""' in shown
        assert option_selected(shown, f"resolve-{handoff['conversation_id']}-feedback") is None
        replied = await page.htmx_post(f"{base}/reply", {"text": "Hello", "recommendation": "4"})
        assert replied.status_code == 200, "an index the handoff does not have is not an error (it may have changed)"
        assert (await page.htmx_post(f"{base}/resolve", {"resolution": "Done"})).status_code == 200
    entry = await learning_entry(desk, agent, handoff["conversation_id"])
    assert entry["recommendation_usage"] == {}


# --- transfer ----------------------------------------------------------------------------------------------------


async def test_transfer_to_a_colleague_then_to_a_skill(module_desk: Desk) -> None:
    desk = module_desk
    ada = desk.staff("agent", name="Ada Transfer")
    bea = desk.staff("agent", name="Bea <i>Taker</i>")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with browser(desk.server, ada) as page, browser(desk.server, bea) as other:
        await page.htmx_post(f"{base}/claim")
        shown = (await page.get(base)).text
        assert f'<option value="{bea.id}">{escape(bea.name)} (agent)</option>' in shown
        assert f'<option value="{ada.id}"' not in shown, "the holder is not offered to themselves"
        assert '<option value="billing">' in shown, "skills of the desk are offered"

        moved = await page.htmx_post(f"{base}/transfer", {"to_agent_id": bea.id})
        assert moved.status_code == 200, moved.text
        assert f"Transferred to {escape(bea.name)}." in moved.text
        assert f'<section id="composer-{conversation_id}" class="composer" hx-swap-oob="true">' in moved.text
        assert f'id="reply-text-{conversation_id}"' not in moved.text, "the reply box is theirs now"
        async with desk.api(ada.token) as api:
            assert (await read(api, conversation_id))["assignee"]["id"] == bea.id
        watched = (await page.get(base)).text
        assert "You are watching." in watched, "the former holder may still read it"

        assert f'id="reply-text-{conversation_id}"' in (await other.get(base)).text
        queued_again = await other.htmx_post(f"{base}/transfer", {"to_skill": "refunds"})
        assert queued_again.status_code == 200, queued_again.text
        assert "Back in the queue for refunds." in queued_again.text
        assert "Claim <kbd>c</kbd></button>" in queued_again.text

    async with desk.api(bea.token) as api:
        conversation = await read(api, conversation_id)
        assert conversation["status"] == "queued"
        assert conversation["assignee"] is None
        assert conversation["handoff"]["skills"] == ["refunds"]
        queue = ok(await api.get("/api/v1/queue"))["items"]
        assert conversation_id in [item["conversation_id"] for item in queue]


async def test_transfer_from_the_wrong_side_and_with_bad_input_changes_nothing(module_desk: Desk) -> None:
    desk = module_desk
    holder = desk.staff("agent")
    outsider = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with browser(desk.server, outsider) as page:
        # Queued: every agent may see it, but only the holder or a supervisor moves it.
        refused = await page.htmx_post(f"{base}/transfer", {"to_skill": "refunds"})
        assert refused.status_code == 403
        assert "Only the assignee or a supervisor can transfer" in refused.text
        assert 'class="transfer' not in refused.text, "no transfer form for someone who may not transfer"
        async with desk.api(holder.token) as api:
            await claim(api, conversation_id)
        hidden = await page.htmx_post(f"{base}/transfer", {"to_agent_id": outsider.id})
        assert hidden.status_code == 404, "someone else's conversation is not there for them"
        assert hidden.headers["HX-Retarget"] == "#flash"

    async with browser(desk.server, holder) as page:
        for form, status, says in (
            ({"to_agent_id": "0" * 32}, 422, "No such active staff member."),
            ({"to_agent_id": "x" * 500}, 422, "No such active staff member."),
            ({"to_agent_id": outsider.id, "to_skill": "refunds"}, 422, "one of them"),
            ({}, 422, "one of them"),
            ({"to_skill": "s" * 65}, 422, "at most 64 characters"),
        ):
            answer = await page.htmx_post(f"{base}/transfer", form)
            assert answer.status_code == status, (form, answer.text)
            assert says in answer.text
            assert f'id="transfer-{conversation_id}-outcome" class="outcome transfer" open' in answer.text
        kept = await page.htmx_post(f"{base}/transfer", {"to_skill": XSS_TEXT * 3})
        assert kept.status_code == 422
        assert_no_inline_code(kept.text)
        forged = await page.client.post(f"{base}/transfer", data={"csrf_token": "forged", "to_skill": "refunds"})
        assert forged.status_code == 403

    async with browser(desk.server) as anonymous:
        signed_out = await anonymous.client.post(f"{base}/transfer", data={"to_skill": "refunds"})
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/login")

    async with desk.api(holder.token) as api:
        conversation = await read(api, conversation_id)
    assert (conversation["status"], conversation["assignee"]["id"]) == ("assigned", holder.id)
    assert conversation["handoff"]["skills"] == ["billing"]


# --- canned replies ----------------------------------------------------------------------------------------------


async def test_canned_replies_are_searched_and_shown_as_text(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    supervisor = desk.staff("supervisor")
    by = StaffPrincipal(id=supervisor.id, name=supervisor.name, role="supervisor", email=supervisor.email)
    marker = f"zq{agent.id[:6]}"  # this test's replies, among whatever other tests of the module added
    with database(desk) as db:
        create_canned(db, by=by, title=f"{marker} Refund sent", body="Your refund is on its way.")
        create_canned(db, by=by, title=f"{marker} Greeting", body=f"Hello! {XSS_TEXT} REFUND policy")
        create_canned(db, by=by, title=f"{marker} Goodbye", body="Have a nice day.")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    async with browser(desk.server, agent) as page:
        everything = await page.get(f"/desk/canned?conversation={conversation_id}&q={marker}")
        assert everything.status_code == 200
        assert everything.text.startswith(f'<ul id="canned-{conversation_id}" class="canned" role="listbox"')
        assert everything.text.count('role="option" aria-selected="false"') == 3

        found = (await page.get(f"/desk/canned?conversation={conversation_id}&q=refund")).text
        titles = re.findall(r'<span class="canned-title">([^<]*)</span>', found)
        assert f"{marker} Refund sent" in titles, "the title matches"
        assert f"{marker} Greeting" in titles, "the body matches, in any case"
        assert f"{marker} Goodbye" not in titles
        assert f'id="canned-{conversation_id}-0"' in found
        assert str(escape(f"Hello! {XSS_TEXT} REFUND policy")) in found, "bodies are attributes and text, escaped"
        assert "<img src=x" not in found
        assert_no_inline_code(found)
        assert " hx-disable>" in found.split("\n")[0]

        query = urlencode({"conversation": conversation_id, "q": "<b hx-get=/logout>none"})
        nothing = (await page.get(f"/desk/canned?{query}")).text
        assert "No canned reply matches &ldquo;&lt;b hx-get=/logout&gt;none&rdquo;" in nothing

        bad = await page.get("/desk/canned?conversation=../../etc&q=x", **{"HX-Request": "true"})
        assert bad.status_code == 422
        assert bad.headers["HX-Retarget"] == "#flash"

    async with browser(desk.server) as anonymous:
        signed_out = await anonymous.get(f"/desk/canned?conversation={conversation_id}")
        assert signed_out.status_code == 303


# --- the outcome form --------------------------------------------------------------------------------------------


async def test_outcome_form_errors_are_shown_and_nothing_typed_is_lost(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    typed = {
        "resolution": "Refunded <b>twice</b>",
        "recommendation_feedback": "loved it",
        "note_for_ai": "Check the card next time",
        "tags": "refund, urgent",
    }
    async with browser(desk.server, agent) as page:
        await page.htmx_post(f"{base}/claim")
        for move in ("return", "resolve"):
            bad = await page.htmx_post(f"{base}/{move}", typed)
            assert bad.status_code == 422
            assert bad.text.startswith(f'<section id="status-{conversation_id}"')
            assert f'id="{move}-{conversation_id}-outcome" class="outcome outcome-{move}" open' in bad.text
            form = bad.text[bad.text.index(f'id="{move}-{conversation_id}-outcome"') :]
            assert "Check the outcome" in form.split("</form>")[0], "the error is shown in the form it is about"
            assert "Refunded &lt;b&gt;twice&lt;/b&gt;</textarea>" in form
            assert "Check the card next time</textarea>" in form
            assert 'value="refund, urgent"' in form
            assert re.search(rf'<select id="{move}-{conversation_id}-feedback"[^>]*aria-invalid="true"', bad.text)
            assert_no_inline_code(bad.text)
        too_many = await page.htmx_post(f"{base}/resolve", {"tags": ",".join(f"t{i}" for i in range(60))})
        assert too_many.status_code == 422
        assert 'aria-invalid="true"' in too_many.text
    async with desk.api(agent.token) as api:
        assert (await read(api, conversation_id))["status"] == "assigned"


# --- the page ----------------------------------------------------------------------------------------------------


async def test_the_workspace_page_marks_the_ai_part_and_has_its_live_parts(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent")
    handoff = await queued(desk)
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with browser(desk.server, agent) as page:
        before = (await page.get(base)).text
        assert f'<p id="typing-{conversation_id}" class="typing" aria-live="polite"' in before
        assert f'<div id="viewers-{conversation_id}" class="viewers"' in before
        assert '<link rel="stylesheet" href="/static/workspace.css">' in before
        assert '<script src="/static/workspace.js" defer></script>' in before
        assert 'id="shortcuts-help"' in before
        # The AI's part of the timeline ends at a divider saying why it was handed over.
        timeline = before[before.index(f'id="timeline-items-{conversation_id}"') :]
        divider = timeline.index("Handed to a human:")
        assert "low_confidence, AI confidence 31%" in timeline[divider:]
        assert "I can see two charges." in timeline[:divider]
        assert 'class="tag tag-ai"' in timeline[:divider]
        assert "A person from our team will join" in timeline[divider:]
        assert 'aria-live="polite"' in timeline.split(">")[0]
        assert 'aria-keyshortcuts="c"' in before
        assert_no_inline_code(before)

        await page.htmx_post(f"{base}/claim")
        claimed = (await page.get(base)).text
        assert 'role="tablist"' in claimed
        assert f'id="note-panel-{conversation_id}" class="composer-panel note-panel" role="tabpanel"' in claimed
        assert 'name="recommendation" value=""' in claimed
        assert f'aria-controls="canned-{conversation_id}"' in claimed
        noted = await page.htmx_post(f"{base}/note", {"text": "Checked with finance."})
        assert "Internal note &mdash; customers never see this" in noted.text
        assert "You are watching." not in claimed
        assert_no_inline_code(claimed)


async def test_a_supervisor_watches_read_only_and_may_add_notes(module_desk: Desk) -> None:
    desk = module_desk
    agent = desk.staff("agent", name="Holder Hana")
    supervisor = desk.staff("supervisor")
    integration = desk.integration()
    async with desk.api(integration.token) as ai:
        handoff = await escalate(ai, context_bundle())
    conversation_id = handoff["conversation_id"]
    base = f"/desk/conversations/{conversation_id}"
    async with desk.api(agent.token) as api:
        await claim(api, conversation_id)
    async with browser(desk.server, supervisor) as page:
        shown = (await page.get(base)).text
        assert "You are watching." in shown
        assert "Holder Hana</bdi> holds this conversation" in shown
        assert f'id="reply-text-{conversation_id}"' not in shown
        assert f'id="note-text-{conversation_id}"' in shown
        assert 'role="tablist"' not in shown
        noted = await page.htmx_post(f"{base}/note", {"text": "Watching this one."})
        assert noted.status_code == 200
        replied = await page.htmx_post(f"{base}/reply", {"text": "Hi, supervisor here."})
        assert replied.status_code == 403
    async with desk.api(agent.token) as api:
        conversation = await read(api, conversation_id)
    assert "Hi, supervisor here." not in [m["text"] for m in conversation["messages"]]
    assert [n["text"] for n in conversation["notes"]] == ["Watching this one."]
