"""Reads that enforce who may see what: conversations, the queue, customers' own view."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from desk.auth.principals import CustomerPrincipal, IntegrationPrincipal, StaffPrincipal
from desk.domain import permissions
from desk.domain.states import Status
from desk.errors import NotFound
from desk.ids import hash_token
from desk.store.db import Database
from desk.store.models import Conversation, Customer, Handoff, HandoffAgent, Message, Note, User
from desk.store.queue import position_of, queued
from desk.store.shapes import customer_json, handoff_json, message_json, note_json, reason_json, user_ref
from desk.store.types import iso

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
    return body


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


def customer_status(db: Database, conversation_id: str) -> dict[str, Any]:
    """The customer's status frame: status, the agent's name while assigned, the queue position while queued."""
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
            frame["position"] = _position(session, conversation.open_handoff_id)
    return frame


def _position(session: Session, handoff_id: str) -> int:
    handoff = session.get(Handoff, handoff_id)
    return 0 if handoff is None or handoff.status != "queued" else position_of(session, handoff)


def queue(db: Database, viewer: StaffPrincipal, *, skill: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Queued conversations, most urgent first (priority, SLA deadline, age)."""
    with db.read() as session:
        # Positions are places in the whole queue, so a skill filter needs every row; without one, only `limit`.
        rows = queued(session, limit=None if skill is not None else limit)
    items = []
    for position, (handoff, conversation, customer) in enumerate(rows, start=1):
        if skill is not None and skill not in handoff.skills:
            continue
        items.append(
            {
                "conversation_id": conversation.id,
                "handoff_id": handoff.id,
                "position": position,
                "reason": reason_json(handoff),
                "priority": handoff.priority,
                "skills": handoff.skills,
                "waiting_since": iso(handoff.created_at),
                "sla_due_at": iso(handoff.sla_due_at),
                "summary": handoff.summary,
                "customer": {"name": customer.name, "email": customer.email},
            }
        )
        if len(items) >= limit:
            break
    return items


def assignee_of(db: Database, conversation_id: str) -> str | None:
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        return conversation.assignee_id if conversation else None


MY_CONVERSATIONS_LIMIT = 100


def my_conversations(db: Database, viewer: StaffPrincipal) -> list[dict[str, Any]]:
    """The conversations the viewer holds now, most recently active first."""
    with db.read() as session:
        rows = session.execute(
            select(Conversation, Customer, Handoff)
            .join(Customer, Customer.id == Conversation.customer_id)  # type: ignore[arg-type]
            .outerjoin(Handoff, Handoff.id == Conversation.open_handoff_id)  # type: ignore[arg-type]
            .where(Conversation.assignee_id == viewer.id, Conversation.status == Status.ASSIGNED)  # type: ignore[arg-type]
            .order_by(Conversation.updated_at.desc())  # type: ignore[attr-defined]
            .limit(MY_CONVERSATIONS_LIMIT)
        ).all()
    return [
        {
            "conversation_id": conversation.id,
            "status": conversation.status,
            "customer": {"name": customer.name, "email": customer.email},
            "summary": handoff.summary if handoff else None,
            "priority": handoff.priority if handoff else None,
            "reason": reason_json(handoff) if handoff else None,
            "updated_at": iso(conversation.updated_at),
        }
        for conversation, customer, handoff in rows
    ]
