"""One action = one write transaction that also writes its event rows; listeners hear of them after commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, insert
from sqlmodel import Session

from desk.ids import new_id
from desk.store.db import Database, orm_session
from desk.store.events import EventRecord, insert_events
from desk.store.models import AuditEntry, built, column_values, table_of
from desk.store.types import utcnow

_INSERT_AUDIT = insert(table_of(AuditEntry))


class ConversationLike(Protocol):
    """What an event needs to know of its conversation: an ORM row, or the hot path's `SeqState`."""

    @property
    def id(self) -> str: ...
    @property
    def integration_id(self) -> str | None: ...
    @property
    def assignee_id(self) -> str | None: ...


@dataclass
class Tx:
    """An action's transaction. SQL goes through `connection`; the ORM `session` is opened on first use only,
    so the per-message hot path pays nothing for it."""

    connection: Connection
    db: Database
    events: list[dict[str, Any]] = field(default_factory=list)
    _session: Session | None = None
    _close: ExitStack = field(default_factory=ExitStack)

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._close.enter_context(orm_session(self.connection))
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def emit(
        self,
        type: str,
        conversation: ConversationLike | None,
        data: dict[str, Any],
        *,
        staff: bool = True,
        integration: bool = False,
        customer: bool = False,
        queue: bool = False,
        agent_id: str | None = None,
    ) -> None:
        self.events.append(
            {
                "type": type,
                "at": utcnow(),
                "conversation_id": conversation.id if conversation else None,
                "integration_id": conversation.integration_id if conversation else None,
                "data": data,
                "for_staff": staff,
                "for_integration": integration and conversation is not None and conversation.integration_id is not None,
                "for_customer": customer,
                "agent_id": agent_id if agent_id is not None else (conversation.assignee_id if conversation else None),
                "queue_scope": queue,
            }
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
        entry = built(
            AuditEntry,
            id=new_id(),
            actor_kind=actor_kind,
            actor_id=actor_id,
            action=action,
            conversation_id=conversation_id,
            detail=detail,
        )
        # SQL rather than the session: the audit log refers to nothing by key, and the hot paths that audit (a
        # handoff the desk opens in an AI outage) need no ORM session for it.
        self.connection.execute(_INSERT_AUDIT, [column_values(entry)])


@contextmanager
def transaction(db: Database) -> Iterator[Tx]:
    records: list[EventRecord] = []
    with db.write_connection() as connection:
        tx = Tx(connection=connection, db=db)
        with tx._close:
            yield tx
            tx.flush()
        if tx.events:
            ids = insert_events(connection, tx.events, lock_key=db.events_lock_key)
            records = [EventRecord(id=event_id, **event) for event_id, event in zip(ids, tx.events, strict=True)]
    if records:
        for listener in list(db.commit_listeners):
            listener(records)
