"""Event rows as immutable records, and the queries every feed reads them with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from desk.store.models import Event
from desk.store.types import iso


@dataclass(frozen=True)
class EventRecord:
    id: int
    type: str
    at: datetime
    conversation_id: str | None
    integration_id: str | None
    data: dict[str, Any]
    for_staff: bool
    for_integration: bool
    for_customer: bool
    agent_id: str | None
    queue_scope: bool
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: Event) -> EventRecord:
        assert row.id is not None
        return cls(
            id=row.id,
            type=row.type,
            at=row.at,
            conversation_id=row.conversation_id,
            integration_id=row.integration_id,
            data=row.data,
            for_staff=row.for_staff,
            for_integration=row.for_integration,
            for_customer=row.for_customer,
            agent_id=row.agent_id,
            queue_scope=row.queue_scope,
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "at": iso(self.at),
            "conversation_id": self.conversation_id,
            "data": self.data,
        }

    @cached_property
    def staff_frame(self) -> str:
        """The staff socket frame, encoded once however many sockets receive it."""
        return json.dumps({"type": "event", "event": self.public()}, separators=(",", ":"))

    @cached_property
    def body(self) -> str:
        return json.dumps(self.public(), separators=(",", ":"))


def fetch_after(session: Session, after: int, limit: int = 1000) -> list[EventRecord]:
    rows = session.execute(select(Event).where(col(Event.id) > after).order_by(col(Event.id)).limit(limit)).scalars()
    return [EventRecord.from_row(row) for row in rows]


def fetch_for_integration(session: Session, integration_id: str, after: int, limit: int = 100) -> list[EventRecord]:
    query = (
        select(Event)
        .where(col(Event.integration_id) == integration_id, col(Event.for_integration), col(Event.id) > after)
        .order_by(col(Event.id))
        .limit(limit)
    )
    return [EventRecord.from_row(row) for row in session.execute(query).scalars()]


def last_event_id(session: Session) -> int:
    value = session.execute(select(func.max(Event.id))).scalar()
    return int(value or 0)
