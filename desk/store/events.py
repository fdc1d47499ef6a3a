"""Event rows as immutable records, and the queries every feed reads them with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select
from sqlmodel import Session

from desk.store.models import Event, table_of
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

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "at": iso(self.at),
            "conversation_id": self.conversation_id,
            "data": self.data,
        }

    def wire(self) -> dict[str, Any]:
        """For the bus: everything, so other processes can dispatch without reading the row back."""
        return {
            "id": self.id,
            "type": self.type,
            "at": iso(self.at),
            "conversation_id": self.conversation_id,
            "integration_id": self.integration_id,
            "data": self.data,
            "for_staff": self.for_staff,
            "for_integration": self.for_integration,
            "for_customer": self.for_customer,
            "agent_id": self.agent_id,
            "queue_scope": self.queue_scope,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> EventRecord:
        return cls(**{**wire, "at": datetime.fromisoformat(wire["at"].replace("Z", "+00:00"))})

    @cached_property
    def staff_frame(self) -> str:
        """The staff socket frame, encoded once however many sockets receive it."""
        return json.dumps({"type": "event", "event": self.public()}, separators=(",", ":"))

    @cached_property
    def body(self) -> str:
        return json.dumps(self.public(), separators=(",", ":"))


_EVENTS = table_of(Event)
_COLUMNS = [c for c in _EVENTS.c if c.name != "_cache"]
_AFTER = select(*_COLUMNS).where(_EVENTS.c.id > bindparam("after")).order_by(_EVENTS.c.id).limit(bindparam("limit"))
_FOR_INTEGRATION = (
    select(*_COLUMNS)
    .where(
        _EVENTS.c.integration_id == bindparam("integration_id"),
        _EVENTS.c.for_integration.is_(True),
        _EVENTS.c.id > bindparam("after"),
    )
    .order_by(_EVENTS.c.id)
    .limit(bindparam("limit"))
)


_INSERT = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)
_FIELDS = [c.name for c in _EVENTS.c if c.name != "id"]
# PostgreSQL, one event (the per-message case): take the events lock and insert in one round trip. The lock is
# volatile, so the CTE is evaluated (not inlined away) before the row is built.
_LOCK = select(func.pg_advisory_xact_lock(bindparam("lock_key"))).cte("events_lock")
_INSERT_ONE_LOCKED = (
    insert(_EVENTS)
    .from_select(_FIELDS, select(*[bindparam(f, type_=_EVENTS.c[f].type) for f in _FIELDS]).select_from(_LOCK))
    .returning(_EVENTS.c.id)
)


def insert_events(connection: Connection, rows: list[dict[str, Any]], *, lock_key: int | None) -> list[int]:
    """Insert event rows, returning their ids in order. With `lock_key` (PostgreSQL), the transaction first takes
    the advisory lock that makes ids visible in commit order; it is held until commit."""
    if lock_key is None:
        return list(connection.execute(_INSERT, rows).scalars())
    if len(rows) == 1:
        return [connection.execute(_INSERT_ONE_LOCKED, {**rows[0], "lock_key": lock_key}).scalar_one()]
    connection.execute(select(func.pg_advisory_xact_lock(lock_key)))
    return list(connection.execute(_INSERT, rows).scalars())


def _records(rows: Any) -> list[EventRecord]:
    return [EventRecord(**row._mapping) for row in rows]


def fetch_after(session: Session, after: int, limit: int = 1000) -> list[EventRecord]:
    """Every event after `after`, in id order (Core, not ORM: the event pump calls this per batch)."""
    return _records(session.connection().execute(_AFTER, {"after": after, "limit": limit}))


def fetch_for_integration(session: Session, integration_id: str, after: int, limit: int = 100) -> list[EventRecord]:
    params = {"integration_id": integration_id, "after": after, "limit": limit}
    return _records(session.connection().execute(_FOR_INTEGRATION, params))


def last_event_id(session: Session) -> int:
    value = session.execute(select(func.max(_EVENTS.c.id))).scalar()
    return int(value or 0)
