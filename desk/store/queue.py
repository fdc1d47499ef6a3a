"""The live queue in SQL: queued handoffs most urgent first (priority, SLA deadline, age), and positions in it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from desk.domain.routing import PRIORITY_RANK, Priority
from desk.store.models import Conversation, Customer, Handoff

_RANK = case({p.value: r for p, r in PRIORITY_RANK.items()}, value=col(Handoff.priority), else_=len(PRIORITY_RANK))
QUEUE_ORDER = (_RANK, col(Handoff.sla_due_at), col(Handoff.created_at), col(Handoff.id))


def queued(session: Session, *, limit: int | None = None) -> list[Any]:
    """(handoff, conversation, customer) rows in queue order."""
    query = (
        select(Handoff, Conversation, Customer)
        .join(Conversation, col(Conversation.id) == col(Handoff.conversation_id))
        .join(Customer, col(Customer.id) == col(Conversation.customer_id))
        .where(col(Handoff.status) == "queued")
        .order_by(*QUEUE_ORDER)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def position_of(session: Session, handoff: Handoff) -> int:
    """1-based place of a queued handoff: how many sort before it, plus one (one COUNT, not a scan in Python)."""
    rank = PRIORITY_RANK[Priority(handoff.priority)]
    ahead_priorities = [p.value for p, r in PRIORITY_RANK.items() if r < rank]
    same_priority_ahead = (col(Handoff.priority) == handoff.priority) & (
        (col(Handoff.sla_due_at) < handoff.sla_due_at)
        | ((col(Handoff.sla_due_at) == handoff.sla_due_at) & (col(Handoff.created_at) < handoff.created_at))
        | (
            (col(Handoff.sla_due_at) == handoff.sla_due_at)
            & (col(Handoff.created_at) == handoff.created_at)
            & (col(Handoff.id) < handoff.id)
        )
    )
    ahead = session.execute(
        select(func.count())
        .select_from(Handoff)
        .where(col(Handoff.status) == "queued", col(Handoff.id) != handoff.id)
        .where(col(Handoff.priority).in_(ahead_priorities) | same_priority_ahead)
    ).scalar()
    return int(ahead or 0) + 1
