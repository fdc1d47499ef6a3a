"""Reads that enforce who may see what: conversations, the queue, customers' own view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from desk.auth.principals import CustomerPrincipal, IntegrationPrincipal, StaffPrincipal
from desk.domain import permissions
from desk.domain.states import Status
from desk.errors import NotFound
from desk.ids import hash_token
from desk.store.db import Database
from desk.store.models import Conversation, Customer, Event, Handoff, HandoffAgent, Message, Note, User
from desk.store.queue import QueueRow, claim_rate, estimated_wait_s, position_of, queue_slice, queued_skills
from desk.store.shapes import customer_json, handoff_json, message_json, note_json, user_ref
from desk.store.types import iso, utcnow

Viewer = StaffPrincipal | IntegrationPrincipal | CustomerPrincipal


def conversation_for_customer_token(db: Database, token: str) -> Conversation | None:
    with db.read() as session:
        return session.execute(
            select(Conversation).where(Conversation.customer_token_hash == hash_token(token))  # type: ignore[arg-type]
        ).scalar_one_or_none()


def may_view(session: Session, viewer: Viewer, conversation: Conversation) -> bool:
    if isinstance(viewer, IntegrationPrincipal):
        return conversation.integration_id == viewer.id
    if isinstance(viewer, CustomerPrincipal):
        return conversation.id == viewer.conversation_id
    held = (
        session.execute(
            select(col(HandoffAgent.user_id)).where(
                col(HandoffAgent.conversation_id) == conversation.id,
                col(HandoffAgent.user_id) == viewer.id,
            )
        ).first()
        is not None
    )
    return permissions.staff_may_view(
        role=viewer.role,
        user_id=viewer.id,
        status=conversation.status,
        assignee_id=conversation.assignee_id,
        held_before=held,
    )


def read_conversation(db: Database, conversation_id: str, viewer: Viewer) -> dict[str, Any]:
    """The conversation as CONTRACT.md section 4 reads it; notes only for staff."""
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or not may_view(session, viewer, conversation):
            raise NotFound("No such conversation.")
        customer = session.get(Customer, conversation.customer_id)
        assignee = session.get(User, conversation.assignee_id) if conversation.assignee_id else None
        handoff = session.get(Handoff, conversation.open_handoff_id) if conversation.open_handoff_id else None
        messages = session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)  # type: ignore[arg-type]
        ).scalars()
        body: dict[str, Any] = {
            "id": conversation.id,
            "status": conversation.status,
            "channel": conversation.channel,
            "assignee": user_ref(assignee),
            "customer": customer_json(customer) if customer else None,
            "metadata": conversation.meta,
            "handoff": handoff_json(handoff) if handoff else None,
            "messages": [message_json(m) for m in messages],
            "created_at": iso(conversation.created_at),
            "updated_at": iso(conversation.updated_at),
            "deferred_until": iso(conversation.deferred_until),
        }
        if isinstance(viewer, StaffPrincipal):
            notes = session.execute(
                select(Note).where(Note.conversation_id == conversation_id).order_by(Note.created_at)  # type: ignore[arg-type]
            ).scalars()
            body["notes"] = [note_json(n) for n in notes]
            body["fallback"] = fallback_timeline(session, conversation_id)
    return body


FALLBACK_EVENTS = (
    "signal.detected",
    "fallback.tier",
    "conversation.deferred",
    "callback.scheduled",
    "handoff.requeued",
)


def fallback_timeline(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    """What the fallback engine detected and did in this conversation, oldest first: staff only."""
    rows = session.execute(
        select(Event)
        .where(col(Event.conversation_id) == conversation_id, col(Event.type).in_(FALLBACK_EVENTS))
        .order_by(col(Event.id))
    ).scalars()
    return [{"id": e.id, "type": e.type, "at": iso(e.at), "data": e.data} for e in rows]


def messages_after(db: Database, conversation_id: str, after_seq: int, limit: int = 500) -> list[Message]:
    with db.read() as session:
        return list(
            session.execute(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.seq > after_seq)  # type: ignore[arg-type]
                .order_by(Message.seq)  # type: ignore[arg-type]
                .limit(limit)
            ).scalars()
        )


def recent_messages(db: Database, conversation_id: str, limit: int) -> list[Message]:
    """The last `limit` messages, oldest first (an AI turn's history: not the whole conversation)."""
    with db.read() as session:
        rows = session.execute(
            select(Message)
            .where(col(Message.conversation_id) == conversation_id)
            .order_by(col(Message.seq).desc())
            .limit(limit)
        ).scalars()
        return list(reversed(list(rows)))


def customer_status(db: Database, conversation_id: str, *, claim_rate: float | None) -> dict[str, Any]:
    """The customer's status frame: status, the agent's name while assigned, the queue position while queued.
    `claim_rate` (claims per second lately, see `recent_claim_rate`) makes the ETA."""
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound("No such conversation.")
        frame: dict[str, Any] = {"type": "status", "status": conversation.status}
        if conversation.assignee_id:
            agent = session.get(User, conversation.assignee_id)
            if agent is not None:
                frame["agent"] = {"name": agent.name}
        if conversation.status == "queued" and conversation.open_handoff_id:
            return queued_status(_position(session, conversation.open_handoff_id), claim_rate)
        if conversation.status == "deferred":
            frame["deferred_until"] = iso(conversation.deferred_until)
    return frame


def queued_status(position: int, claim_rate: float | None) -> dict[str, Any]:
    """The status frame of a queued customer, from their place in the queue (also known from `handoff.created`)."""
    wait = estimated_wait_s(position, claim_rate)
    # Rounded up to the half minute: the estimate is rough, and a frame that changes every second would resend the
    # status on every refresh for nothing.
    eta_s = None if wait is None else int(math.ceil(wait / 30.0) * 30)
    return {"type": "status", "status": Status.QUEUED.value, "position": position, "eta_s": eta_s}


def recent_claim_rate(db: Database) -> float | None:
    with db.read() as session:
        return claim_rate(session, utcnow())


def _position(session: Session, handoff_id: str) -> int:
    handoff = session.get(Handoff, handoff_id)
    return 0 if handoff is None or handoff.status != "queued" else position_of(session, handoff)


def queue(db: Database, viewer: StaffPrincipal, *, skill: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Queued conversations, most urgent first (priority, SLA deadline, age); positions in the whole queue."""
    return queue_page(db, viewer, skill=skill, limit=limit).items


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    total: int  # every queued conversation that matched the filter, listed or not


def queue_page(db: Database, viewer: StaffPrincipal, *, skill: str | None = None, limit: int = 500) -> QueuePage:
    """The first `limit` of the queue (for `skill`) and how many match in all, counted in SQL."""
    with db.read() as session:
        found = queue_slice(session, skill=skill, limit=limit)
    return QueuePage([_queue_item(row) for row in found.rows], found.total)


def _queue_item(row: QueueRow) -> dict[str, Any]:
    return {
        "conversation_id": row.conversation_id,
        "handoff_id": row.handoff_id,
        "position": row.position,
        "reason": {"code": row.reason_code, "detail": row.reason_detail, "confidence": row.confidence},
        "priority": row.priority,
        "skills": row.skills,
        "waiting_since": iso(row.created_at),
        "sla_due_at": iso(row.sla_due_at),
        "summary": row.summary,
        "customer": {"name": row.customer_name, "email": row.customer_email},
    }


def filter_skills(db: Database, viewer: StaffPrincipal) -> list[str]:
    """What the queue can be filtered by: the skills queued conversations ask for, and the viewer's own."""
    with db.read() as session:
        user = session.get(User, viewer.id)
        return sorted(queued_skills(session) | set(user.skills if user else []))


def assignee_of(db: Database, conversation_id: str) -> str | None:
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        return conversation.assignee_id if conversation else None


MY_CONVERSATIONS_LIMIT = 100


def my_conversations(db: Database, viewer: StaffPrincipal) -> list[dict[str, Any]]:
    """The conversations the viewer holds now, most recently active first, each with who wrote last."""
    return conversations_held_by(db, [viewer.id]).get(viewer.id, [])


def conversations_held_by(db: Database, user_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`my_conversations` of several staff members in one read (every open desk page after a queue change)."""
    last_seq = col(Conversation.last_seq)
    with db.read() as session:
        rows = session.execute(
            select(
                col(Conversation.assignee_id),
                col(Conversation.id),
                col(Conversation.status),
                col(Conversation.updated_at),
                col(Customer.name),
                col(Customer.email),
                col(Handoff.id),
                col(Handoff.summary),
                col(Handoff.priority),
                col(Handoff.reason_code),
                col(Handoff.reason_detail),
                col(Handoff.confidence),
                col(Handoff.claimed_at),
                col(Message.author_kind),
                col(Message.created_at),
            )
            .join(Customer, col(Customer.id) == col(Conversation.customer_id))
            .outerjoin(Handoff, col(Handoff.id) == col(Conversation.open_handoff_id))
            .outerjoin(Message, (col(Message.conversation_id) == col(Conversation.id)) & (col(Message.seq) == last_seq))
            .where(col(Conversation.assignee_id).in_(list(user_ids)), col(Conversation.status) == Status.ASSIGNED)
            .order_by(col(Conversation.updated_at).desc(), col(Conversation.id))
        ).all()
    held: dict[str, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
    for row in rows:
        mine = held[row[0]]
        if len(mine) < MY_CONVERSATIONS_LIMIT:
            mine.append(_held(*row[1:]))
    return held


def _held(
    conversation_id: str,
    status: str,
    updated_at: datetime,
    customer_name: str | None,
    customer_email: str | None,
    handoff_id: str | None,
    summary: str | None,
    priority: str | None,
    reason_code: str | None,
    reason_detail: str | None,
    confidence: float | None,
    claimed_at: datetime | None,
    author_kind: str | None,
    written_at: datetime | None,
) -> dict[str, Any]:
    reason = {"code": reason_code, "detail": reason_detail, "confidence": confidence} if handoff_id else None
    return {
        "conversation_id": conversation_id,
        "status": status,
        "customer": {"name": customer_name, "email": customer_email},
        "summary": summary,
        "priority": priority,
        "reason": reason,
        "claimed_at": iso(claimed_at),
        "updated_at": iso(updated_at),
        "last_message": {"author_kind": author_kind, "at": iso(written_at)} if author_kind else None,
    }
