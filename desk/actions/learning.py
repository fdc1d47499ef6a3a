"""The learning log: one entry per finished handoff, written in the same transaction that finishes it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from desk.actions._tx import Tx, transaction
from desk.auth.principals import StaffPrincipal
from desk.domain.states import is_staff_manager
from desk.errors import NotFound, ValidationFailed
from desk.ids import new_id
from desk.store.db import Database
from desk.store.models import Handoff, LearningEntry, User
from desk.store.shapes import learning_json

CSV_COLUMNS = (
    "id",
    "created_at",
    "conversation_id",
    "handoff_id",
    "finished_as",
    "reason_code",
    "confidence",
    "priority",
    "skills",
    "summary",
    "intent",
    "recommendation_feedback",
    "resolution",
    "note_for_ai",
    "tags",
    "wait_s",
    "handle_s",
    "agent_id",
    "agent_name",
    "csat",
    "policy_version",
    "signals",
)


def record_learning(
    tx: Tx, handoff: Handoff, outcome: dict[str, Any], *, finished_as: str, agent: User | None, at: datetime
) -> LearningEntry:
    wait_s = (handoff.claimed_at - handoff.created_at).total_seconds() if handoff.claimed_at else None
    handle_s = (at - handoff.claimed_at).total_seconds() if handoff.claimed_at else None
    entry = LearningEntry(
        id=new_id(),
        handoff_id=handoff.id,
        conversation_id=handoff.conversation_id,
        finished_as=finished_as,
        reason_code=handoff.reason_code,
        reason_detail=handoff.reason_detail,
        confidence=handoff.confidence,
        priority=handoff.priority,
        skills=handoff.skills,
        summary=handoff.summary,
        classification=handoff.classification,
        recommended_actions=handoff.recommended_actions,
        recommendation_feedback=outcome.get("recommendation_feedback"),
        recommendation_usage=dict(handoff.recommendation_usage),
        resolution=outcome.get("resolution"),
        note_for_ai=outcome.get("note_for_ai"),
        tags=list(outcome.get("tags") or []),
        outcome=outcome,
        wait_s=wait_s,
        handle_s=handle_s,
        agent_id=agent.id if agent else None,
        agent_name=agent.name if agent else None,
        policy_version=handoff.policy_version,
        signals=[s for s in handoff.meta.get("signals") or [] if isinstance(s, dict)],
        created_at=at,
    )
    tx.session.add(entry)
    return entry


def list_entries(
    db: Database, *, viewer: StaffPrincipal | None, since: datetime | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Newest last. `viewer=None` is the operator (CLI export): everything."""
    query = select(LearningEntry).order_by(LearningEntry.created_at, LearningEntry.id)  # type: ignore[arg-type]
    if since is not None:
        query = query.where(LearningEntry.created_at >= since)
    if viewer is not None and not is_staff_manager(viewer.role):
        query = query.where(LearningEntry.agent_id == viewer.id)
    with db.read() as session:
        return [learning_json(entry) for entry in session.exec(query.limit(limit))]


def to_jsonl(entries: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)


def to_csv(entries: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for entry in entries:
        writer.writerow(
            {
                **entry,
                "reason_code": entry["reason"]["code"],
                "confidence": entry["reason"]["confidence"],
                "skills": ";".join(entry["skills"]),
                "tags": ";".join(entry["tags"]),
                "signals": ";".join(str(signal.get("kind")) for signal in entry["signals"]),
                "intent": (entry["classification"] or {}).get("intent"),
                "agent_id": entry["agent"]["id"],
                "agent_name": entry["agent"]["name"],
            }
        )
    return out.getvalue()


def rate(db: Database, *, conversation_id: str, score: int, comment: str | None) -> bool:
    """The customer's rating goes on the latest learning entry of the conversation (its CSAT)."""
    with transaction(db) as tx:
        entry = tx.session.exec(
            select(LearningEntry)
            .where(LearningEntry.conversation_id == conversation_id)
            .order_by(LearningEntry.created_at.desc())  # type: ignore[attr-defined]
        ).first()
        if entry is None:
            return False
        entry.csat = score
        entry.outcome = {**entry.outcome, "csat_comment": comment}
        tx.session.add(entry)
        tx.audit(
            "conversation.rated",
            actor_kind="customer",
            actor_id=None,
            conversation_id=conversation_id,
            score=score,
        )
    return True


# --- browsing (the learning log pages) ----------------------------------------------------------------------------

FINISHED_AS = ("returned", "resolved")


@dataclass(frozen=True)
class LearningFilter:
    """What the learning log browser and its exports narrow the log to. `until` is exclusive."""

    reason: str | None = None
    finished_as: str | None = None
    agent_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Any, viewer: StaffPrincipal, filters: LearningFilter) -> Any:
    if not is_staff_manager(viewer.role):
        query = query.where(col(LearningEntry.agent_id) == viewer.id)
    if filters.reason is not None:
        query = query.where(col(LearningEntry.reason_code) == filters.reason)
    if filters.finished_as is not None:
        query = query.where(col(LearningEntry.finished_as) == filters.finished_as)
    if filters.agent_id is not None:
        query = query.where(col(LearningEntry.agent_id) == filters.agent_id)
    if filters.since is not None:
        query = query.where(col(LearningEntry.created_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(LearningEntry.created_at) < filters.until)
    return query


def _beyond(session: Session, entry_id: str, *, older: bool) -> ColumnElement[bool]:
    """Entries strictly older (or newer) than `entry_id` in (created_at, id) order: a keyset cursor."""
    mark = session.get(LearningEntry, entry_id)
    if mark is None:
        message = "That page of the learning log does not exist (before: unknown entry)."
        raise ValidationFailed(message, fields={"before": "unknown entry"})
    at, entry = col(LearningEntry.created_at), col(LearningEntry.id)
    if older:
        return or_(at < mark.created_at, and_(at == mark.created_at, entry < mark.id))
    return or_(at > mark.created_at, and_(at == mark.created_at, entry > mark.id))


def browse_entries(
    db: Database, *, viewer: StaffPrincipal, filters: LearningFilter, before: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of entries, newest first, older than the entry `before`; and the cursor of the next (older) page,
    None on the last."""
    query = _filtered(select(LearningEntry), viewer, filters)
    query = query.order_by(col(LearningEntry.created_at).desc(), col(LearningEntry.id).desc())
    with db.read() as session:
        if before is not None:
            query = query.where(_beyond(session, before, older=True))
        rows = list(session.exec(query.limit(limit + 1)))
    shown = rows[:limit]
    return [learning_json(row) for row in shown], shown[-1].id if len(rows) > limit else None


def export_entries(
    db: Database, *, viewer: StaffPrincipal, filters: LearningFilter, after: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Entries oldest first (as `desk learning export` writes them), `limit` after the entry `after`: an export
    reads the log in chunks of this."""
    query = _filtered(select(LearningEntry), viewer, filters)
    query = query.order_by(col(LearningEntry.created_at), col(LearningEntry.id))
    with db.read() as session:
        if after is not None:
            query = query.where(_beyond(session, after, older=False))
        return [learning_json(row) for row in session.exec(query.limit(limit))]


def read_entry(db: Database, *, viewer: StaffPrincipal, entry_id: str) -> dict[str, Any]:
    """One entry, with the transcript the AI handed over (kept on its handoff)."""
    with db.read() as session:
        row = session.get(LearningEntry, entry_id)
        if row is None or (not is_staff_manager(viewer.role) and row.agent_id != viewer.id):
            raise NotFound("No such learning log entry.")
        handoff = session.get(Handoff, row.handoff_id)
    entry = learning_json(row)
    entry["transcript"] = handoff.transcript if handoff is not None else []
    return entry
