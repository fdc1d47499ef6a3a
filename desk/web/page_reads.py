"""Reads the desk pages need that `desk.actions.reads` does not offer yet (run them with `Runtime.call`).

`my_conversations` belongs in `desk/actions/reads.py`; it lives here until the core takes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from desk.auth.principals import StaffPrincipal
from desk.domain.states import Status
from desk.store.db import Database
from desk.store.models import Conversation, Customer, Handoff
from desk.store.types import iso

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
            "reason": {"code": handoff.reason_code, "confidence": handoff.confidence} if handoff else None,
            "updated_at": iso(conversation.updated_at),
        }
        for conversation, customer, handoff in rows
    ]
