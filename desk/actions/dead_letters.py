"""Webhook dead letters: events an integration's webhook refused for good (desk/webhooks/delivery.py writes them).

Admins list them and replay them one at a time. A replay is split around its HTTP attempt, which the deliverer
makes: `replay` loads what to send, `mark_replayed` records how it went (and audits it). `replayed_at` is the time
of the last replay and `replay_status` its answer (None: no answer); a 2xx means it was replayed, anything else
leaves it as it was, showing the last status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from desk.actions._tx import transaction
from desk.auth.principals import StaffPrincipal
from desk.domain.states import Role
from desk.errors import Conflict, Forbidden, NotFound
from desk.store.db import Database
from desk.store.events import EventRecord, fetch_for_integration
from desk.store.models import DeadLetter, Event, Integration
from desk.store.types import iso, utcnow

DEFAULT_LIMIT = 200


@dataclass(frozen=True)
class DeadLetterItem:
    id: str
    integration_id: str
    integration_name: str
    event_id: int
    event_type: str | None
    conversation_id: str | None
    status_code: int | None
    error: str | None
    created_at: datetime
    replayed_at: datetime | None
    replay_status: int | None

    @property
    def replayed(self) -> bool:
        return self.replay_status is not None and 200 <= self.replay_status < 300

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "integration_id": self.integration_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "conversation_id": self.conversation_id,
            "status_code": self.status_code,
            "error": self.error,
            "created_at": iso(self.created_at),
            "replayed_at": iso(self.replayed_at),
            "replay_status": self.replay_status,
        }


@dataclass(frozen=True)
class ReplayTarget:
    """What a replay sends: the event, to the integration's webhook as it is now, with its current secret."""

    dead_letter_id: str
    url: str
    secret: str
    event: EventRecord


def _require_admin(by: StaffPrincipal | None) -> None:
    """`by=None` is the operator at the command line, who may do anything."""
    if by is not None and by.role != Role.ADMIN:
        raise Forbidden("Only admins see and replay webhook dead letters.")


# The event row gives the type and conversation (an outer join: a dead letter outlives a pruned event).
_ITEMS = (
    select(DeadLetter, col(Integration.name), col(Event.type), col(Event.conversation_id))
    .join(Integration, col(Integration.id) == col(DeadLetter.integration_id))
    .outerjoin(Event, col(Event.id) == col(DeadLetter.event_id))
)


def _item(row: Any) -> DeadLetterItem:
    letter, integration_name, event_type, conversation_id = row
    return DeadLetterItem(
        id=letter.id,
        integration_id=letter.integration_id,
        integration_name=integration_name,
        event_id=letter.event_id,
        event_type=event_type,
        conversation_id=conversation_id,
        status_code=letter.status_code,
        error=letter.error,
        created_at=letter.created_at,
        replayed_at=letter.replayed_at,
        replay_status=letter.replay_status,
    )


def list_dead_letters(
    db: Database, *, integration_id: str | None = None, limit: int = DEFAULT_LIMIT, by: StaffPrincipal | None = None
) -> list[DeadLetterItem]:
    """Newest first, with the event's type and conversation."""
    _require_admin(by)
    query = _ITEMS
    if integration_id is not None:
        query = query.where(col(DeadLetter.integration_id) == integration_id)
    query = query.order_by(col(DeadLetter.created_at).desc(), col(DeadLetter.event_id).desc()).limit(limit)
    with db.read() as session:
        return [_item(row) for row in session.execute(query)]


def get_dead_letter(db: Database, dead_letter_id: str, *, by: StaffPrincipal | None = None) -> DeadLetterItem:
    _require_admin(by)
    with db.read() as session:
        row = session.execute(_ITEMS.where(col(DeadLetter.id) == dead_letter_id)).first()
    if row is None:
        raise NotFound("No such dead letter.")
    return _item(row)


def replay(db: Database, *, dead_letter_id: str, by: StaffPrincipal) -> ReplayTarget:
    """What to send to replay a dead letter; the deliverer sends it, then calls `mark_replayed`."""
    _require_admin(by)
    with db.read() as session:
        letter = session.get(DeadLetter, dead_letter_id)
        if letter is None:
            raise NotFound("No such dead letter.")
        integration = session.get(Integration, letter.integration_id)
        if integration is None or not integration.active:
            raise Conflict("This integration is deactivated: reactivate it first.", code="integration_inactive")
        if not integration.webhook_url:
            raise Conflict("This integration has no webhook URL any more.", code="no_webhook")
        found = fetch_for_integration(session, integration.id, letter.event_id - 1, limit=1)
    if not found or found[0].id != letter.event_id:
        raise Conflict("The event of this dead letter is no longer stored.", code="event_gone")
    return ReplayTarget(dead_letter_id, integration.webhook_url, integration.webhook_secret, found[0])


def mark_replayed(db: Database, dead_letter_id: str, status: int | None, *, by: StaffPrincipal) -> None:
    _require_admin(by)
    with transaction(db) as tx:
        letter = tx.session.get(DeadLetter, dead_letter_id)
        if letter is None:
            raise NotFound("No such dead letter.")
        letter.replayed_at, letter.replay_status = utcnow(), status
        tx.session.add(letter)
        event = tx.session.get(Event, letter.event_id)
        tx.audit(
            "webhook.replay",
            actor_kind="staff",
            actor_id=by.id,
            conversation_id=event.conversation_id if event else None,
            integration_id=letter.integration_id,
            dead_letter_id=letter.id,
            event_id=letter.event_id,
            status=status,
        )
