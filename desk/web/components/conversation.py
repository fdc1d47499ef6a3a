"""The conversation workspace's components: status, timeline, composer, forms (see desk.web.components)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from desk.actions.reads import assignee_of, read_conversation
from desk.actions.staff import staff_by_id
from desk.auth.principals import StaffPrincipal
from desk.domain import permissions
from desk.domain.states import Status, next_status
from desk.errors import NotFound
from desk.runtime import Runtime
from desk.web.templating import parse_time, render

FEEDBACK_CHOICES = ("used", "edited", "ignored", "wrong")
_MOVES = ("claim", "reply", "note", "return_to_ai", "resolve")


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
    }


def timeline_items(conv: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages in `seq` order with the internal notes (read oldest first) merged in by time."""
    notes = list(conv.get("notes", []))
    items: list[dict[str, Any]] = []
    for message in conv.get("messages", []):
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
    return ConversationView(me, conv, can, items=timeline_items(conv), csrf=csrf)


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
    oob: bool = False,
) -> str:
    return render(
        "_conversation_status.html",
        **_context(view),
        notice=notice,
        error=error,
        form=form or {},
        feedback_choices=FEEDBACK_CHOICES,
        oob=oob,
    )


def composer_html(view: ConversationView, *, oob: bool = False) -> str:
    return render("_composer.html", **_context(view), oob=oob)


def reply_form_html(
    view: ConversationView, *, text: str = "", error: str | None = None, client_id: str | None = None
) -> str:
    return render("_reply_form.html", **_context(view), text=text, error=error, client_id=client_id)


def note_form_html(
    view: ConversationView, *, text: str = "", error: str | None = None, client_id: str | None = None
) -> str:
    return render("_note_form.html", **_context(view), text=text, error=error, client_id=client_id)


def timeline_html(view: ConversationView, *, oob: bool = False) -> str:
    return render("_timeline.html", **_context(view), oob=oob)


def appended_html(
    conversation_id: str, *, message: dict[str, Any] | None = None, note: dict[str, Any] | None = None
) -> str:
    """A message or note to append to the conversation's timeline (`hx-swap-oob="beforeend"`)."""
    item = {"kind": "message", "message": message} if message is not None else {"kind": "note", "note": note}
    return render("_timeline_append.html", conversation_id=conversation_id, item=item)


def conversation_page_context(view: ConversationView) -> dict[str, Any]:
    return {**_context(view), "feedback_choices": FEEDBACK_CHOICES, "form": {}}


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
    }
