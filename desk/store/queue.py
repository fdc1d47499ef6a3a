"""The live queue in SQL: queued handoffs most urgent first (priority, SLA deadline, age), and positions in it.

A position is a place in the whole queue, also when the listing is filtered by skill. Unfiltered, the first `limit`
are positions 1..limit: a top-N sort, and a COUNT the status index answers. Filtered, `queue_slice` numbers every
queued handoff with `ROW_NUMBER()` over the queue order (a window function, on SQLite and PostgreSQL alike), keeps
those asking for the skill, counts them with `COUNT(*) OVER ()` and keeps the first `limit`: one statement. Only
narrow columns take part in sorting; the bundle's big JSON columns are read for the rows shown and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, Subquery, Text, bindparam, case, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from desk.domain.routing import PRIORITY_RANK, Priority
from desk.store.models import Conversation, Customer, Handoff
from desk.store.types import UTCDateTime

_RANK = case({p.value: r for p, r in PRIORITY_RANK.items()}, value=col(Handoff.priority), else_=len(PRIORITY_RANK))
QUEUE_ORDER = (_RANK, col(Handoff.sla_due_at), col(Handoff.created_at), col(Handoff.id))


@dataclass(frozen=True)
class QueueRow:
    """What the queue shows of one queued handoff (no transcript, no recommended actions)."""

    position: int
    handoff_id: str
    conversation_id: str
    reason_code: str
    reason_detail: str | None
    confidence: float | None
    priority: str
    skills: list[str]
    summary: str | None
    created_at: datetime
    sla_due_at: datetime
    customer_name: str | None
    customer_email: str | None


@dataclass(frozen=True)
class QueueSlice:
    rows: list[QueueRow]
    total: int  # every queued handoff that matched, shown or not


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


def has_skill(dialect: str, skills: Any, skill: str) -> ColumnElement[bool]:
    """`skill` is one of the strings in the JSON list `skills`: an exact match, on both databases."""
    if dialect == "postgresql":
        return cast(skills, JSONB).contains([skill])
    each = func.json_each(skills).table_valued("value")
    return select(each.c.value).where(each.c.value == skill).exists()


def queue_slice(session: Session, *, skill: str | None, limit: int) -> QueueSlice:
    """The first `limit` queued handoffs (asking for `skill`, when given), their positions in the whole queue, and
    how many matched in all."""
    if skill is None:
        # Positions are 1..limit: a top-N sort (no full sort of the queue) and a COUNT the status index answers.
        top = (
            select(col(Handoff.id).label("handoff_id"), literal_column("0").label("position"))
            .where(col(Handoff.status) == "queued")
            .order_by(*QUEUE_ORDER)
            .limit(limit)
            .subquery("page")
        )
        rows = [row for row, _ in _shown(session, top, numbered=True)]
        return QueueSlice(rows, len(rows) if len(rows) < limit else _count(session, None))
    ranked = (
        select(
            col(Handoff.id).label("handoff_id"),
            col(Handoff.skills).label("skills"),
            func.row_number().over(order_by=QUEUE_ORDER).label("position"),
        )
        .where(col(Handoff.status) == "queued")
        .subquery("ranked")
    )
    matched = (
        select(ranked.c.handoff_id, ranked.c.position, func.count().over().label("total"))
        .where(has_skill(session.get_bind().dialect.name, ranked.c.skills, skill))
        .order_by(ranked.c.position)
        .limit(limit)
        .subquery("page")
    )
    shown = _shown(session, matched)
    total = shown[0][1] if shown else (0 if limit > 0 else _count(session, skill))
    return QueueSlice([row for row, _ in shown], total)


def _shown(session: Session, page: Subquery, *, numbered: bool = False) -> list[tuple[QueueRow, int]]:
    """What the queue shows of the handoffs in `page` (handoff_id, position, total?), in its order; with `total`.
    `numbered`: the page is the head of the queue, so its positions are 1, 2, 3..."""
    total = page.c.total if "total" in page.c else literal_column("0")
    query = (
        select(
            page.c.position,
            col(Handoff.id),
            col(Handoff.conversation_id),
            col(Handoff.reason_code),
            col(Handoff.reason_detail),
            col(Handoff.confidence),
            col(Handoff.priority),
            col(Handoff.skills),
            col(Handoff.summary),
            col(Handoff.created_at),
            col(Handoff.sla_due_at),
            col(Customer.name),
            col(Customer.email),
            total,
        )
        .select_from(page)
        .join(Handoff, col(Handoff.id) == page.c.handoff_id)
        .join(Conversation, col(Conversation.id) == col(Handoff.conversation_id))
        .join(Customer, col(Customer.id) == col(Conversation.customer_id))
        .order_by(page.c.position, *QUEUE_ORDER)
    )
    rows = session.execute(query).all()
    return [(QueueRow(n if numbered else int(r[0]), *r[1:-1]), int(r[-1])) for n, r in enumerate(rows, start=1)]


def _count(session: Session, skill: str | None) -> int:
    query = select(func.count()).select_from(Handoff).where(col(Handoff.status) == "queued")
    if skill is not None:
        query = query.where(has_skill(session.get_bind().dialect.name, col(Handoff.skills), skill))
    return int(session.execute(query).scalar() or 0)


def queued_skills(session: Session) -> set[str]:
    """Every skill some queued handoff asks for. Distinct lists first, in SQL: few, however long the queue."""
    lists = session.execute(
        select(cast(col(Handoff.skills), Text)).where(col(Handoff.status) == "queued").distinct()
    ).scalars()
    return {skill for raw in lists if raw for skill in json.loads(raw) if isinstance(skill, str)}


def _ahead_of() -> Any:
    """How many queued handoffs sort before the one described by the bind parameters: built once, since building
    the expression costs more than running it (it is read for every escalation and every waiting customer)."""
    rank = bindparam("rank", type_=Integer)
    due = bindparam("due", type_=UTCDateTime())
    created = bindparam("created", type_=UTCDateTime())
    handoff_id = bindparam("handoff_id", type_=String())
    same_rank_ahead = (rank == _RANK) & (
        (col(Handoff.sla_due_at) < due)
        | ((col(Handoff.sla_due_at) == due) & (col(Handoff.created_at) < created))
        | ((col(Handoff.sla_due_at) == due) & (col(Handoff.created_at) == created) & (col(Handoff.id) < handoff_id))
    )
    return (
        select(func.count())
        .select_from(Handoff)
        .where(col(Handoff.status) == "queued", col(Handoff.id) != handoff_id)
        .where((rank > _RANK) | same_rank_ahead)
    )


_AHEAD = _ahead_of()


def position_of(session: Session | Connection, handoff: Handoff) -> int:
    """1-based place of a queued handoff: how many sort before it, plus one (one COUNT, not a scan in Python)."""
    params = {
        "rank": PRIORITY_RANK[Priority(handoff.priority)],
        "due": handoff.sla_due_at,
        "created": handoff.created_at,
        "handoff_id": handoff.id,
    }
    ahead = session.execute(_AHEAD, params).scalar()
    return int(ahead or 0) + 1


CLAIM_RATE_WINDOW_S = 3600.0  # claims older than this say little about the floor now
CLAIM_RATE_SAMPLE = 20  # the most recent claims that are enough to estimate from


_RECENT_CLAIMS = (
    select(col(Handoff.claimed_at))
    .where(col(Handoff.claimed_at) >= bindparam("since", type_=UTCDateTime()))
    .order_by(col(Handoff.claimed_at).desc())
    .limit(CLAIM_RATE_SAMPLE)
)


def claim_rate(session: Session, now: datetime) -> float | None:
    """Claims per second lately: the last CLAIM_RATE_SAMPLE claims within the window, over the time they span
    (at least a minute, so a burst of two claims does not promise seconds). None with fewer than two."""
    since = now - timedelta(seconds=CLAIM_RATE_WINDOW_S)
    times: list[datetime] = list(session.execute(_RECENT_CLAIMS, {"since": since}).scalars())
    if len(times) < 2:
        return None
    span = max(60.0, (now - min(times)).total_seconds())
    return len(times) / span


def estimated_wait_s(position: int, rate: float | None) -> float | None:
    """How long the customer at `position` should wait, at the recent claim rate."""
    if rate is None or rate <= 0 or position < 1:
        return None
    return position / rate


def queue_length(session: Session) -> int:
    return _count(session, None)
