"""The learning log browser: entries with filters, a page per entry, and the filtered log as JSONL or CSV."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from desk.actions.learning import (
    FINISHED_AS,
    LearningFilter,
    browse_entries,
    export_entries,
    read_entry,
    to_csv,
    to_jsonl,
)
from desk.actions.staff import list_users
from desk.auth.principals import StaffPrincipal
from desk.domain.routing import ReasonCode
from desk.errors import ValidationFailed
from desk.runtime import Runtime
from desk.web.auth import runtime
from desk.web.pages._common import page, page_route
from desk.web.pages._formats import FORMATS
from desk.web.pages._roles import manager
from desk.web.security import csrf_token, page_headers

PAGE_SIZE = 50
EXPORT_CHUNK = 1000
REASONS: tuple[str, ...] = get_args(ReasonCode)
FILTER_KEYS = ("reason", "outcome", "agent", "from", "to")
HEX_ID = re.compile(r"[0-9a-f]{32}")
EXPORTS = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _day(value: str, key: str, fields: dict[str, str]) -> datetime | None:
    """The start (00:00 UTC) of a YYYY-MM-DD day; blank is none."""
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
    except ValueError:
        fields[key] = "a date like 2026-11-25"
        return None


def parse_filters(params: Mapping[str, str]) -> LearningFilter:
    values = {key: params.get(key, "").strip() for key in FILTER_KEYS}
    fields: dict[str, str] = {}
    if values["reason"] and values["reason"] not in REASONS:
        fields["reason"] = "one of " + ", ".join(REASONS)
    if values["outcome"] and values["outcome"] not in FINISHED_AS:
        fields["outcome"] = "returned or resolved"
    if values["agent"] and not HEX_ID.fullmatch(values["agent"]):
        fields["agent"] = "a staff member from the list"
    since, last_day = _day(values["from"], "from", fields), _day(values["to"], "to", fields)
    until = last_day + timedelta(days=1) if last_day else None
    if since and until and since >= until:
        fields["to"] = "on or after the start date"
    if fields:
        detail = "; ".join(f"{key}: {problem}" for key, problem in fields.items())
        raise ValidationFailed(f"Check the filters ({detail}).", fields=fields)
    return LearningFilter(
        reason=values["reason"] or None,
        finished_as=values["outcome"] or None,
        agent_id=values["agent"] or None,
        since=since,
        until=until,
    )


def _query(params: Mapping[str, str], **extra: str) -> str:
    """The filters as a query string (for the export links and the next page)."""
    kept = {key: params[key] for key in FILTER_KEYS if params.get(key)}
    return urlencode({**kept, **extra})


def _before(params: Mapping[str, str]) -> str | None:
    value = params.get("before", "")
    if value and not HEX_ID.fullmatch(value):
        raise ValidationFailed(
            "That page of the learning log does not exist (before: unknown entry).", fields={"before": "unknown entry"}
        )
    return value or None


@page_route
async def learning_page(request: Request) -> Response:
    who = await manager(request)
    rt, params = runtime(request), request.query_params
    context: dict[str, Any] = {
        "me": who,
        "csrf": csrf_token(request),
        "form": {key: params.get(key, "") for key in FILTER_KEYS},
        "reasons": REASONS,
        "outcomes": FINISHED_AS,
        "staff": await rt.call(list_users),
        "query": _query(params),
        **FORMATS,
    }
    try:
        filters = parse_filters(params)
        entries, older = await rt.call(
            browse_entries, viewer=who, filters=filters, before=_before(params), limit=PAGE_SIZE
        )
    except ValidationFailed as exc:
        return page(request, "learning.html", 422, **context, entries=[], errors=exc.fields or {}, error=exc.message)
    older_query = _query(params, before=older) if older else ""
    return page(request, "learning.html", **context, entries=entries, errors={}, older_query=older_query)


@page_route
async def entry_page(request: Request) -> Response:
    who = await manager(request)
    entry = await runtime(request).call(read_entry, viewer=who, entry_id=request.path_params["id"])
    return page(request, "learning_entry.html", me=who, csrf=csrf_token(request), entry=entry, **FORMATS)


async def _export(request: Request, kind: str) -> Response:
    who = await manager(request)
    filters = parse_filters(request.query_params)
    rt = runtime(request)
    # The first chunk is read before answering, so that a failure is still an error page, not a cut download.
    first = await rt.call(export_entries, viewer=who, filters=filters, limit=EXPORT_CHUNK)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    headers = {**page_headers(request), "Content-Disposition": f'attachment; filename="learning-log-{stamp}.{kind}"'}
    return StreamingResponse(_chunks(rt, who, filters, first, kind), media_type=EXPORTS[kind], headers=headers)


async def _chunks(
    rt: Runtime, who: StaffPrincipal, filters: LearningFilter, chunk: list[dict[str, Any]], kind: str
) -> AsyncIterator[str]:
    """The log in chunks of EXPORT_CHUNK entries, oldest first, through the exporters of `desk learning export`;
    CSV has its header line once."""
    first = True
    while True:
        text = to_jsonl(chunk) if kind == "jsonl" else to_csv(chunk)
        yield text if first or kind == "jsonl" else text.split("\n", 1)[1]
        first = False
        if len(chunk) < EXPORT_CHUNK:
            return
        chunk = await rt.call(export_entries, viewer=who, filters=filters, after=chunk[-1]["id"], limit=EXPORT_CHUNK)


@page_route
async def export_jsonl(request: Request) -> Response:
    return await _export(request, "jsonl")


@page_route
async def export_csv(request: Request) -> Response:
    return await _export(request, "csv")


ROUTES: list[BaseRoute] = [
    Route("/learning", learning_page, methods=["GET"]),
    Route("/learning/export.jsonl", export_jsonl, methods=["GET"]),
    Route("/learning/export.csv", export_csv, methods=["GET"]),
    Route("/learning/{id:hexid}", entry_page, methods=["GET"]),
]
