"""The live queue and "my conversations" (templates/_queue.html, _queue_item.html, _my_conversations.html)."""

from __future__ import annotations

from typing import Any

from desk.actions.reads import my_conversations, queue
from desk.auth.principals import StaffPrincipal
from desk.runtime import Runtime
from desk.web.templating import render

QUEUE_LIMIT = 200


async def load_queue(rt: Runtime, me: StaffPrincipal) -> list[dict[str, Any]]:
    return await rt.call(queue, me, limit=QUEUE_LIMIT)


async def load_mine(rt: Runtime, me: StaffPrincipal) -> list[dict[str, Any]]:
    return await rt.call(my_conversations, me)


def queue_html(items: list[dict[str, Any]], *, oob: bool = False) -> str:
    """The same for every viewer (so one rendering can go to every socket)."""
    return render("_queue.html", items=items, oob=oob)


def mine_html(items: list[dict[str, Any]], *, oob: bool = False) -> str:
    return render("_my_conversations.html", mine=items, oob=oob)
