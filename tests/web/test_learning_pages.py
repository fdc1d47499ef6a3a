"""The learning log browser: who may see it, its filters and pages, an entry's whole bundle, the exports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from desk.actions.learning import CSV_COLUMNS
from tests._support import Desk, Staff, claim, context_bundle, escalate, ok, outcome
from tests.web.test_floor_page import texts
from tests.web.test_pages import XSS_TEXT, assert_no_inline_code, browser

PAGE_SIZE = 50


async def _finish(desk: Desk, ai_token: str, agent: Staff, how: str = "return", **bundle: Any) -> str:
    """One handoff, claimed by `agent` and returned to the AI or resolved; its conversation id."""
    async with desk.api(ai_token) as ai, desk.api(agent.token) as staff:
        handoff = await escalate(ai, context_bundle(**bundle))
        cid = str(handoff["conversation_id"])
        await claim(staff, cid)
        feedback = "used" if how == "return" else "ignored"
        ok(await staff.post(f"/api/v1/conversations/{cid}/{how}", json=outcome(recommendation_feedback=feedback)))
    return cid


async def _entries(desk: Desk, token: str) -> dict[str, dict[str, Any]]:
    """Learning log entries by conversation id, through the API."""
    async with desk.api(token) as boss:
        items = ok(await boss.get("/api/v1/learning-log"))["items"]
    return {item["conversation_id"]: item for item in items}


def _rows(page: str) -> list[str]:
    """The entry ids of a page of the log, in the order shown."""
    return [key.removeprefix("entry-") for key in texts(page) if key.startswith("entry-")]


async def test_the_learning_log_is_for_supervisors_and_admins(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    agent, supervisor, admin = desk.staff("agent"), desk.staff("supervisor"), desk.staff("admin")
    await _finish(desk, integration.token, agent)
    entry_id = next(iter((await _entries(desk, supervisor.token)).values()))["id"]
    paths = ("/learning", f"/learning/{entry_id}", "/learning/export.jsonl", "/learning/export.csv")
    async with browser(desk.server) as anonymous:
        for path in paths:
            response = await anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=")
    async with browser(desk.server, agent) as page:
        for path in paths:
            response = await page.get(path)
            assert response.status_code == 403, path
            assert "for supervisors and admins" in response.text
    for boss in (supervisor, admin):
        async with browser(desk.server, boss) as page:
            for path in paths:
                assert (await page.get(path)).status_code == 200, path


async def test_filters_newest_first_and_the_whole_bundle_of_an_entry(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    ada, bob, boss = desk.staff("agent", name="Ada Learner"), desk.staff("agent"), desk.staff("supervisor")
    first = await _finish(desk, integration.token, ada, reason={"code": "low_confidence", "confidence": 0.2})
    second = await _finish(desk, integration.token, ada, "resolve", reason={"code": "user_request"})
    third = await _finish(desk, integration.token, bob, reason={"code": "policy_violation"})
    entries = await _entries(desk, boss.token)
    ids = {cid: entries[cid]["id"] for cid in (first, second, third)}
    today = datetime.now(UTC).date()
    async with browser(desk.server, boss) as page:
        everything = await page.get(f"/learning?agent={ada.id}")
        assert _rows(everything.text) == [ids[second], ids[first]]
        assert_no_inline_code(everything.text)

        def shown(query: str) -> Any:
            return page.get(f"/learning?{query}")

        assert _rows((await shown(f"agent={ada.id}&reason=user_request")).text) == [ids[second]]
        assert _rows((await shown(f"agent={ada.id}&outcome=returned")).text) == [ids[first]]
        assert _rows((await shown(f"agent={bob.id}")).text) == [ids[third]]
        assert _rows((await shown(f"agent={ada.id}&from={today}&to={today}")).text) == [ids[second], ids[first]]
        tomorrow = today + timedelta(days=1)
        none = await shown(f"agent={ada.id}&from={tomorrow}")
        assert _rows(none.text) == []
        assert "No entries match these filters" in none.text
        older = await shown(f"agent={ada.id}&before={ids[second]}")
        assert _rows(older.text) == [ids[first]]

        detail = await page.get(f"/learning/{ids[first]}")
        assert detail.status_code == 200
        found = texts(detail.text)
        assert found["entry-feedback"] == "used"
        assert found["entry-resolution"] == "Refunded the duplicate charge"
        assert found["entry-note"].startswith("Refund done")
        assert "I was charged twice for November." in found["entry-transcript"]
        for shown_text in ("Apologise and refund", "refund_request", "Ada Learner", "duplicate-charge", "20%"):
            assert shown_text in detail.text, shown_text
        assert f'href="/desk/conversations/{first}"' in detail.text
        assert_no_inline_code(detail.text)
        assert (await page.get(f"/learning/{'0' * 32}")).status_code == 404


async def test_older_entries_come_a_page_at_a_time(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    boss = desk.staff("supervisor")
    marker = f"paging-{datetime.now(UTC).timestamp()}"
    async with desk.api(integration.token) as ai, desk.api(boss.token) as staff:

        async def resolved() -> None:
            handoff = await escalate(ai, context_bundle())
            cid = handoff["conversation_id"]
            ok(await staff.post(f"/api/v1/conversations/{cid}/resolve", json=outcome(note_for_ai=marker)))

        await asyncio.gather(*(resolved() for _ in range(PAGE_SIZE + 1)))
    async with browser(desk.server, boss) as page:
        # Resolved from the queue, nobody held them: filter on the day and outcome, and page back.
        query = f"outcome=resolved&from={datetime.now(UTC).date()}"
        first = await page.get(f"/learning?{query}")
        rows = _rows(first.text)
        assert len(rows) == PAGE_SIZE
        link = texts(first.text).get("older-entries")
        assert link == "Older entries"
        href = first.text.split('id="older-entries" rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        assert f"before={rows[-1]}" in href
        assert "outcome=resolved" in href
        rest = _rows((await page.get(href)).text)
        assert rest
        assert not set(rest) & set(rows)


async def test_bad_filters_get_a_message_not_an_error(module_desk: Desk) -> None:
    desk = module_desk
    boss = desk.staff("supervisor")
    async with browser(desk.server, boss) as page:
        for query, field in (
            ("reason=nope", "reason"),
            ("outcome=deleted", "outcome"),
            ("agent=bob", "agent"),
            ("from=2026-13-45", "from"),
            ("from=yesterday", "from"),
            ("from=2026-11-25&to=2026-11-01", "to"),
            (f"before={'0' * 32}", "before"),
            ("before=../../etc", "before"),
        ):
            response = await page.get(f"/learning?{query}")
            assert response.status_code == 422, query
            assert 'id="learning-error"' in response.text, query
            assert field in texts(response.text)["learning-error"], query
            for export in ("/learning/export.jsonl", "/learning/export.csv"):
                if field != "before":
                    assert (await page.get(f"{export}?{query}")).status_code == 422, (export, query)
        echoed = await page.get("/learning?reason=" + XSS_TEXT.replace("&", "%26"))
        assert XSS_TEXT not in echoed.text
        assert_no_inline_code(echoed.text)


async def test_exports_are_downloads_with_the_same_filters(module_desk: Desk) -> None:
    desk = module_desk
    integration = desk.integration()
    ada, boss = desk.staff("agent"), desk.staff("admin")
    returned = await _finish(desk, integration.token, ada, reason={"code": "missing_data"})
    resolved = await _finish(desk, integration.token, ada, "resolve", reason={"code": "other"})
    async with browser(desk.server, boss) as page:
        jsonl = await page.get(f"/learning/export.jsonl?agent={ada.id}")
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert jsonl.headers["content-disposition"].startswith("attachment; filename=")
        assert jsonl.headers["content-disposition"].endswith('.jsonl"')
        lines = [json.loads(line) for line in jsonl.text.splitlines()]
        assert [line["conversation_id"] for line in lines] == [returned, resolved]  # oldest first, like the CLI
        assert lines[0]["reason"]["code"] == "missing_data"
        assert lines[0]["finished_as"] == "returned"

        only = await page.get(f"/learning/export.jsonl?agent={ada.id}&outcome=resolved")
        assert [json.loads(line)["conversation_id"] for line in only.text.splitlines()] == [resolved]

        table = await page.get(f"/learning/export.csv?agent={ada.id}&reason=missing_data")
        assert table.headers["content-type"].startswith("text/csv")
        assert table.headers["content-disposition"].endswith('.csv"')
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert tuple(rows[0].keys()) == CSV_COLUMNS
        assert [row["conversation_id"] for row in rows] == [returned]
        assert rows[0]["agent_id"] == ada.id

        empty = await page.get("/learning/export.csv?from=2001-01-01&to=2001-01-01")
        assert empty.text.splitlines() == [",".join(CSV_COLUMNS)]
        assert (await page.get("/learning/export.jsonl?from=2001-01-01&to=2001-01-01")).text == ""
