"""One action = one write transaction that also writes its event rows; listeners hear of them after commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from desk.ids import new_id
from desk.store.db import Database
from desk.store.events import EventRecord
from desk.store.models import AuditEntry, Conversation, Event


@dataclass
class Tx:
    session: Session
    db: Database
    events: list[Event] = field(default_factory=list)

    def emit(
        self,
        type: str,
        conversation: Conversation | None,
        data: dict[str, Any],
        *,
        staff: bool = True,
        integration: bool = False,
        customer: bool = False,
        queue: bool = False,
        agent_id: str | None = None,
    ) -> None:
        self.events.append(
            Event(
                type=type,
                conversation_id=conversation.id if conversation else None,
                integration_id=conversation.integration_id if conversation else None,
                data=data,
                for_staff=staff,
                for_integration=integration and conversation is not None and conversation.integration_id is not None,
                for_customer=customer,
                agent_id=agent_id if agent_id is not None else (conversation.assignee_id if conversation else None),
                queue_scope=queue,
            )
        )

    def audit(
        self,
        action: str,
        *,
        actor_kind: str,
        actor_id: str | None,
        conversation_id: str | None,
        **detail: Any,
    ) -> None:
        self.session.add(
            AuditEntry(
                id=new_id(),
                actor_kind=actor_kind,
                actor_id=actor_id,
                action=action,
                conversation_id=conversation_id,
                detail=detail,
            )
        )


@contextmanager
def transaction(db: Database) -> Iterator[Tx]:
    records: list[EventRecord] = []
    with db.write() as session:
        tx = Tx(session=session, db=db)
        yield tx
        if tx.events:
            session.flush()
            db.lock_events(session)  # held until commit: event ids become visible in order
            session.add_all(tx.events)
            session.flush()
            records = [EventRecord.from_row(event) for event in tx.events]
    if records:
        for listener in list(db.commit_listeners):
            listener(records)
