"""The conversation workspace's components: status, timeline, composer, context bundle, forms, canned replies
(see desk.web.components)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from desk.actions import recommendations
from desk.actions.canned import Canned
from desk.actions.reads import assignee_of, read_conversation
from desk.actions.staff import list_users, staff_by_id
from desk.auth.principals import StaffPrincipal
from desk.domain import permissions
from desk.domain.states import Status, next_status
from desk.errors import NotFound
from desk.runtime import Runtime
from desk.web.templating import parse_time, render

FEEDBACK_CHOICES = ("used", "edited", "ignored", "wrong")
_MOVES = ("claim", "reply", "note", "return_to_ai", "resolve", "transfer")
CANNED_SHOWN = 50


@dataclass(frozen=True)
class ConversationView:
    """A conversation as one staff member sees it, with what they may do to it.

    `visible` is False when they may not read it (someone else holds it): then `conv` has only its id, status and
    assignee's name, enough to say "Already claimed by Ada" and nothing more.
    """

    me: StaffPrincipal
    conv: dict[str, Any]
    can: dict[str, bool]
    visible: bool = True
    items: list[dict[str, Any]] = field(default_factory=list)
    csrf: str = ""
    # What the holder did with each recommended action so far, by index ("used", "edited").
    usage: dict[str, str] = field(default_factory=dict)
    # Whom the viewer may transfer it to (when they may): active colleagues other than the holder.
    colleagues: list[dict[str, Any]] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.conv["id"])

    @property
    def last_seq(self) -> int:
        return max((int(m["seq"]) for m in self.conv.get("messages", [])), default=0)

    @property
    def note_ids(self) -> set[str]:
        return {str(n["id"]) for n in self.conv.get("notes", [])}


def abilities(me: StaffPrincipal, status: str, assignee_id: str | None) -> dict[str, bool]:
    finish = permissions.staff_may_finish(role=me.role, user_id=me.id, assignee_id=assignee_id)
    return {
        "claim": next_status(status, "claim") is not None,
        "reply": status == Status.ASSIGNED and permissions.staff_may_reply(user_id=me.id, assignee_id=assignee_id),
        "note": permissions.staff_may_note(role=me.role, user_id=me.id, assignee_id=assignee_id),
        "return_to_ai": finish and next_status(status, "return") is not None,
        "resolve": finish and next_status(status, "resolve") is not None,
        "transfer": finish and status in (Status.QUEUED, Status.ASSIGNED),
    }


def timeline_items(conv: dict[str, Any], handed_over_at: int | None = None) -> list[dict[str, Any]]:
    """Messages in `seq` order with the internal notes (read oldest first) merged in by time, and a divider after
    the message `handed_over_at` (the last `seq` before the open handoff: where the human part starts)."""
    notes = list(conv.get("notes", []))
    handoff = conv.get("handoff")
    divider_after = handed_over_at if handoff else None
    items: list[dict[str, Any]] = []
    for message in conv.get("messages", []):
        if divider_after is not None and int(message["seq"]) > divider_after:
            items.append({"kind": "divider", "handoff": handoff})
            divider_after = None
        at = parse_time(message["at"])
        while notes and at is not None and (parse_time(notes[0]["at"]) or at) <= at:
            items.append({"kind": "note", "note": notes.pop(0)})
        items.append({"kind": "message", "message": message})
    items.extend({"kind": "note", "note": note} for note in notes)
    return items


# --- loading ----------------------------------------------------------------------------------------------------


async def load_view(rt: Runtime, conversation_id: str, me: StaffPrincipal, csrf: str) -> ConversationView:
    """The viewer's view of a conversation; NotFound when they may not see it."""
    conv = await rt.call(read_conversation, conversation_id, me)
    assignee = conv["assignee"]["id"] if conv["assignee"] else None
    can = abilities(me, conv["status"], assignee)
    handoff = conv["handoff"]
    progress = await rt.call(recommendations.progress_of, handoff["id"]) if handoff else None
    colleagues, skills = await _transfer_choices(rt, assignee) if can["transfer"] else ([], [])
    return ConversationView(
        me,
        conv,
        can,
        items=timeline_items(conv, progress.start_seq if progress else None),
        csrf=csrf,
        usage=progress.usage if progress else {},
        colleagues=colleagues,
        skills=skills,
    )


async def _transfer_choices(rt: Runtime, holder_id: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Active colleagues other than the holder (agents first), and every skill someone on the desk has."""
    users = [u for u in await rt.call(list_users) if u.active]
    colleagues = [
        {"id": u.id, "name": u.name, "role": u.role}
        for u in sorted(users, key=lambda u: (u.role != "agent", u.name.casefold()))
        if u.id != holder_id
    ]
    return colleagues, sorted({skill for u in users for skill in u.skills})


async def load_view_or_outline(rt: Runtime, conversation_id: str, me: StaffPrincipal, csrf: str) -> ConversationView:
    """Like load_view, but a conversation the viewer may no longer see gives its outline (who holds it)."""
    try:
        return await load_view(rt, conversation_id, me, csrf)
    except NotFound:
        pass
    holder_id = await rt.call(assignee_of, conversation_id)
    holder = await rt.call(staff_by_id, holder_id) if holder_id else None
    conv = {
        "id": conversation_id,
        "status": Status.ASSIGNED.value if holder else None,
        "assignee": {"id": holder.id, "name": holder.name} if holder else None,
    }
    return ConversationView(me, conv, dict.fromkeys(_MOVES, False), visible=False, csrf=csrf)


# --- rendering --------------------------------------------------------------------------------------------------


def status_html(
    view: ConversationView,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    error_fields: dict[str, str] | None = None,
    oob: bool = False,
) -> str:
    return render(
        "_conversation_status.html",
        **_context(view),
        notice=notice,
        error=error,
        error_fields=error_fields or {},
        form=form or {},
        feedback_choices=FEEDBACK_CHOICES,
        oob=oob,
    )


def composer_html(view: ConversationView, *, oob: bool = False) -> str:
    return render("_composer.html", **_context(view), oob=oob)


def reply_form_html(
    view: ConversationView,
    *,
    text: str = "",
    error: str | None = None,
    client_id: str | None = None,
    recommendation: str = "",
) -> str:
    return render(
        "_reply_form.html", **_context(view), text=text, error=error, client_id=client_id, recommendation=recommendation
    )


def note_form_html(
    view: ConversationView, *, text: str = "", error: str | None = None, client_id: str | None = None
) -> str:
    return render("_note_form.html", **_context(view), text=text, error=error, client_id=client_id)


def timeline_html(view: ConversationView, *, oob: bool = False) -> str:
    return render("_timeline.html", **_context(view), oob=oob)


def bundle_html(view: ConversationView, *, oob: bool = False) -> str:
    return render("_bundle.html", **_context(view), oob=oob)


def canned_html(conversation_id: str, replies: list[Canned], *, query: str = "") -> str:
    """The canned replies matching what follows the `/` in the reply box (a listbox; text only)."""
    return render(
        "_workspace_canned.html",
        conversation_id=conversation_id,
        replies=replies[:CANNED_SHOWN],
        more=max(0, len(replies) - CANNED_SHOWN),
        query=query,
    )


def appended_html(
    conversation_id: str, *, message: dict[str, Any] | None = None, note: dict[str, Any] | None = None
) -> str:
    """A message or note to append to the conversation's timeline (`hx-swap-oob="beforeend"`)."""
    item = {"kind": "message", "message": message} if message is not None else {"kind": "note", "note": note}
    return render("_timeline_append.html", conversation_id=conversation_id, item=item)


def conversation_page_context(view: ConversationView) -> dict[str, Any]:
    return {**_context(view), "feedback_choices": FEEDBACK_CHOICES, "form": {}, "error_fields": {}}


def new_client_id() -> str:
    return uuid.uuid4().hex


def _context(view: ConversationView) -> dict[str, Any]:
    return {
        "me": view.me,
        "conv": view.conv,
        "can": view.can,
        "visible": view.visible,
        "items": view.items,
        "csrf": view.csrf,
        "new_client_id": new_client_id,
        "usage": view.usage,
        "suggested_feedback": _suggested(view),
        "colleagues": view.colleagues,
        "skills": view.skills,
        "watching": _watching(view),
    }


def _suggested(view: ConversationView) -> str:
    handoff = view.conv.get("handoff")
    return recommendations.suggested_feedback(handoff["recommended_actions"], view.usage) if handoff else ""


def _watching(view: ConversationView) -> bool:
    """Someone else holds it and the viewer may still read it: a supervisor watching, or its former holder."""
    holder = view.conv.get("assignee")
    return view.visible and holder is not None and holder["id"] != view.me.id
