"""The learning log: one entry per finished handoff, written in the same transaction that finishes it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import select

from desk.actions._tx import Tx, transaction
from desk.auth.principals import StaffPrincipal
from desk.domain.states import is_staff_manager
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
        resolution=outcome.get("resolution"),
        note_for_ai=outcome.get("note_for_ai"),
        tags=list(outcome.get("tags") or []),
        outcome=outcome,
        wait_s=wait_s,
        handle_s=handle_s,
        agent_id=agent.id if agent else None,
        agent_name=agent.name if agent else None,
        policy_version=handoff.policy_version,
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
