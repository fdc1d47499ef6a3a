"""The public JSON shape of stored rows (CONTRACT.md sections 3-5), written once for every reader."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from desk.store.models import Customer, Handoff, LearningEntry, Message, Note, User
from desk.store.types import iso


def message_json(message: Message) -> dict[str, Any]:
    return message_shape(
        message.id,
        message.seq,
        message.author_kind,
        message.author_name,
        message.text,
        message.created_at,
        message.client_id,
    )


def message_shape(
    id: str, seq: int, author_kind: str, author_name: str | None, text: str, at: datetime, client_id: str | None
) -> dict[str, Any]:
    """A message as the API shapes it, from its columns (for reads that skip the ORM)."""
    return {
        "id": id,
        "seq": seq,
        "author": {"kind": author_kind, "name": author_name},
        "text": text,
        "at": iso(at),
        "client_id": client_id,
    }


def note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "author": {"kind": "agent", "id": note.author_id, "name": note.author_name},
        "text": note.text,
        "at": iso(note.created_at),
        "internal": True,
        "client_id": note.client_id,
    }


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "locale": customer.locale,
        "attributes": customer.attributes,
    }


def user_ref(user: User | None) -> dict[str, Any] | None:
    return None if user is None else {"id": user.id, "name": user.name, "role": user.role}


def reason_json(row: Handoff | LearningEntry) -> dict[str, Any]:
    return {"code": row.reason_code, "detail": row.reason_detail, "confidence": row.confidence}


def handoff_json(handoff: Handoff) -> dict[str, Any]:
    return {
        "id": handoff.id,
        "status": handoff.status,
        "reason": reason_json(handoff),
        "priority": handoff.priority,
        "skills": handoff.skills,
        "summary": handoff.summary,
        "classification": handoff.classification,
        "recommended_actions": handoff.recommended_actions,
        "transcript": handoff.transcript,
        "metadata": handoff.meta,
        "created_at": iso(handoff.created_at),
        "sla_due_at": iso(handoff.sla_due_at),
        "claimed_at": iso(handoff.claimed_at),
        "claimed_by": handoff.claimed_by,
        "finished_at": iso(handoff.finished_at),
        "outcome": handoff.outcome,
        "policy_version": handoff.policy_version,
    }


def learning_json(entry: LearningEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "handoff_id": entry.handoff_id,
        "conversation_id": entry.conversation_id,
        "finished_as": entry.finished_as,
        "reason": reason_json(entry),
        "priority": entry.priority,
        "skills": entry.skills,
        "summary": entry.summary,
        "classification": entry.classification,
        "recommended_actions": entry.recommended_actions,
        "recommendation_feedback": entry.recommendation_feedback,
        "recommendation_usage": entry.recommendation_usage,
        "resolution": entry.resolution,
        "note_for_ai": entry.note_for_ai,
        "tags": entry.tags,
        "outcome": entry.outcome,
        "wait_s": entry.wait_s,
        "handle_s": entry.handle_s,
        "agent": {"id": entry.agent_id, "name": entry.agent_name},
        "csat": entry.csat,
        "policy_version": entry.policy_version,
        "signals": entry.signals,
        "created_at": iso(entry.created_at),
    }
