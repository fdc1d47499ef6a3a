"""Handoffs: escalate into the queue, claim, assign, transfer, return to the AI, resolve, abandon.

Claims are conditional updates (`... WHERE status = 'queued'`): under any race exactly one claimant's update
matches a row; on PostgreSQL the losers block on the row lock and then see the new status.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from desk.actions._tx import ConversationLike, Tx, transaction
from desk.actions.conversations import (
    AI_NAME,
    SeqState,
    append_message,
    customer_token_for,
    new_conversation,
    next_seq,
    system_message,
)
from desk.actions.learning import record_learning
from desk.actions.recommendations import settled
from desk.auth.principals import IntegrationPrincipal, StaffPrincipal
from desk.domain import permissions
from desk.domain.routing import Priority, sla_due
from desk.domain.states import CLOSED, AuthorKind, Status
from desk.errors import Conflict, Forbidden, NotFound, ValidationFailed
from desk.ids import new_id
from desk.store.db import Database
from desk.store.models import (
    Conversation,
    FallbackState,
    Handoff,
    HandoffAgent,
    IdempotencyKey,
    Message,
    User,
    table_of,
)
from desk.store.queue import position_of
from desk.store.shapes import handoff_json, message_json
from desk.store.types import iso, utcnow

ROLE_TO_KIND = {
    "customer": AuthorKind.CUSTOMER,
    "ai": AuthorKind.AI,
    "agent": AuthorKind.AGENT,
    "system": AuthorKind.SYSTEM,
}
QUEUED_TEXT = "A person from our team will join this conversation shortly."


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def escalate(
    db: Database,
    *,
    integration: IntegrationPrincipal,
    bundle: dict[str, Any],
    idempotency_key: str | None,
    secret: str,
    base_url: str,
    policy_version: str | None = None,
    sla_s: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Queue a conversation for a human with its context bundle. Returns (answer, created)."""
    fingerprint = request_hash(bundle)
    routing = (policy_version, sla_s)
    for _attempt in range(3):
        try:
            return _escalate(db, integration, bundle, idempotency_key, fingerprint, secret, base_url, routing)
        except _Replay as replay:
            return replay.answer, False
        except IntegrityError:
            if idempotency_key is None:
                raise
            continue  # a concurrent request with the same key won: read its answer
        except Conflict:
            # A concurrent request with the same key may have queued this very conversation while we waited
            # for its lock: then this is a repeat, and gets the first answer.
            if idempotency_key is None or (seen := _seen(db, integration.id, idempotency_key)) is None:
                raise
            if seen.request_hash != fingerprint:
                raise _key_reused() from None
            return seen.response, False
    raise Conflict("The request could not be completed; retry it.", code="retry")


def _key_reused() -> ValidationFailed:
    return ValidationFailed(
        "This Idempotency-Key was used with a different request body.", code="idempotency_key_reused"
    )


def _seen(db: Database, integration_id: str, key: str) -> IdempotencyKey | None:
    with db.read() as session:
        return session.get(IdempotencyKey, (integration_id, key))


class _Replay(Exception):
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer


def _escalate(
    db: Database,
    integration: IntegrationPrincipal,
    bundle: dict[str, Any],
    idempotency_key: str | None,
    fingerprint: str,
    secret: str,
    base_url: str,
    routing: tuple[str | None, int | None],
) -> tuple[dict[str, Any], bool]:
    policy_version, sla_s = routing
    with transaction(db) as tx:
        if idempotency_key is not None:
            seen = tx.session.get(IdempotencyKey, (integration.id, idempotency_key))
            if seen is not None:
                if seen.request_hash != fingerprint:
                    raise _key_reused()
                raise _Replay(seen.response)
        conversation = _conversation_for(tx, integration, bundle, secret)
        handoff = open_handoff(
            tx,
            conversation,
            bundle,
            actor_kind="integration",
            actor_id=integration.id,
            sla_s=sla_s,
            policy_version=policy_version,
        )
        answer = {
            "conversation_id": conversation.id,
            "handoff_id": handoff.id,
            "status": Status.QUEUED.value,
            "position": queue_position(tx, handoff),
            "customer_token": customer_token_for(conversation.id, secret),
            "chat_url": f"{base_url}/chat/{customer_token_for(conversation.id, secret)}",
        }
        if idempotency_key is not None:
            tx.session.add(
                IdempotencyKey(
                    integration_id=integration.id,
                    key=idempotency_key,
                    request_hash=fingerprint,
                    response=answer,
                )
            )
            tx.session.flush()
    return answer, True


def _conversation_for(tx: Tx, integration: IntegrationPrincipal, bundle: dict[str, Any], secret: str) -> Conversation:
    conversation_id = bundle.get("conversation_id")
    if conversation_id is None:
        conversation, _, _ = new_conversation(
            tx,
            integration_id=integration.id,
            customer=bundle.get("customer") or {},
            channel=bundle.get("channel") or "web",
            metadata=bundle.get("metadata") or {},
            secret=secret,
        )
        for turn in bundle.get("transcript") or []:
            state = next_seq(tx, conversation.id)
            names = {"customer": state.customer_name, "ai": AI_NAME}
            append_message(
                tx,
                state,
                kind=ROLE_TO_KIND[turn["role"]],
                text=turn["text"],
                author_name=names.get(turn["role"]),
                at=_parse_at(turn.get("at")),
                imported=True,
            )
        tx.session.refresh(conversation)  # its last_seq moved on in SQL
        return conversation
    existing = tx.session.get(Conversation, conversation_id, with_for_update=not tx.db.is_sqlite)
    if existing is None or existing.integration_id != integration.id:
        raise NotFound("No such conversation.")
    conversation = existing
    if conversation.status in (Status.QUEUED, Status.ASSIGNED):
        raise Conflict("This conversation is already with a human or waiting for one.", code="already_escalated")
    if conversation.status in CLOSED:
        raise Conflict("This conversation is closed.", code="conversation_closed")
    return conversation


def new_handoff(
    tx: Tx,
    conversation: Conversation,
    bundle: dict[str, Any],
    *,
    sla_s: int | None = None,
    policy_version: str | None = None,
    status: str = "queued",
) -> Handoff:
    """The handoff row for a context bundle, added to the session."""
    values = handoff_values(
        tx, conversation.id, conversation.last_seq, bundle, sla_s=sla_s, policy_version=policy_version, status=status
    )
    handoff = Handoff(**values)
    tx.session.add(handoff)
    conversation.open_handoff_id = handoff.id
    conversation.updated_at = handoff.created_at
    return handoff


def handoff_values(
    tx: Tx,
    conversation_id: str,
    start_seq: int,
    bundle: dict[str, Any],
    *,
    sla_s: int | None,
    policy_version: str | None,
    status: str = "queued",
    id: str | None = None,
) -> dict[str, Any]:
    """A new handoff's fields for a context bundle (`Handoff(**…)` for the ORM, `built(Handoff, **…)` for SQL).
    Its SLA is the tighter of the priority's and the policy's for the reason (`sla_s`); without a transcript in the
    bundle, it copies the conversation's."""
    now = utcnow()
    reason = bundle["reason"]
    priority = bundle.get("priority") or Priority.NORMAL.value
    transcript = bundle.get("transcript")
    if transcript is None:
        transcript = _transcript_of(tx, conversation_id)
    due = sla_due(priority, now)
    if sla_s is not None:
        due = min(due, now + timedelta(seconds=sla_s))
    return dict(
        id=id or new_id(),
        conversation_id=conversation_id,
        status=status,
        reason_code=reason["code"],
        reason_detail=reason.get("detail"),
        confidence=reason.get("confidence"),
        priority=priority,
        skills=list(bundle.get("skills") or []),
        summary=bundle.get("summary"),
        classification=bundle.get("classification") or {},
        recommended_actions=list(bundle.get("recommended_actions") or []),
        transcript=transcript,
        meta=bundle.get("metadata") or {},
        start_seq=start_seq,
        policy_version=policy_version,
        created_at=now,
        sla_due_at=due,
    )


def open_handoff(
    tx: Tx,
    conversation: Conversation,
    bundle: dict[str, Any],
    *,
    actor_kind: str,
    actor_id: str | None,
    sla_s: int | None = None,
    policy_version: str | None = None,
) -> Handoff:
    """Put a conversation in the queue with its context bundle (used by escalations and by the desk itself)."""
    _supersede_deferred(tx, conversation)
    desk_answering = tx.session.get(FallbackState, conversation.id)
    if desk_answering is not None:  # a flow or a deferral's questions: the human takes over from here
        tx.session.delete(desk_answering)
    handoff = new_handoff(tx, conversation, bundle, sla_s=sla_s, policy_version=policy_version)
    conversation.status = Status.QUEUED
    conversation.assignee_id = None
    tx.session.add(conversation)
    tx.session.flush()
    announce_queued(tx, conversation, handoff, actor_kind=actor_kind, actor_id=actor_id)
    return handoff


def announce_queued(
    tx: Tx,
    conversation: ConversationLike,
    handoff: Handoff,
    *,
    actor_kind: str,
    actor_id: str | None,
    notice: SeqState | None = None,
) -> None:
    """What entering the queue says: the customer's notice (at `notice`'s seq when the caller took it already),
    `handoff.created` with the place in the queue (for staff, the integration and the customer), and the audit
    entry. The handoff row is written already."""
    if notice is None:
        system_message(tx, conversation.id, QUEUED_TEXT)
    else:
        append_message(tx, notice, kind=AuthorKind.SYSTEM, text=QUEUED_TEXT)
    tx.emit(
        "handoff.created",
        conversation,
        {"handoff": handoff_json(handoff), "position": queue_position(tx, handoff)},
        integration=True,
        customer=True,
        queue=True,
    )
    tx.audit(
        "handoff.create",
        actor_kind=actor_kind,
        actor_id=actor_id,
        conversation_id=conversation.id,
        handoff_id=handoff.id,
        reason=handoff.reason_code,
        policy_version=handoff.policy_version,
    )


def _supersede_deferred(tx: Tx, conversation: Conversation) -> None:
    """A deferred conversation escalated again: its deferral's handoff ends here, the new one takes over."""
    if conversation.status != Status.DEFERRED or conversation.open_handoff_id is None:
        return
    earlier = tx.session.get(Handoff, conversation.open_handoff_id)
    if earlier is not None and earlier.status == "deferred":
        earlier.status = "superseded"
        earlier.finished_at = utcnow()
        tx.session.add(earlier)
    conversation.deferred_until = None


_MESSAGES = table_of(Message)
_TRANSCRIPT = (
    select(_MESSAGES.c.author_kind, _MESSAGES.c.text, _MESSAGES.c.created_at)
    .where(_MESSAGES.c.conversation_id == bindparam("cid"))
    .order_by(_MESSAGES.c.seq)
)


def _transcript_of(tx: Tx, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation so far as a bundle's transcript (Core: every desk-routed handoff reads it)."""
    rows = tx.connection.execute(_TRANSCRIPT, {"cid": conversation_id})
    return [{"role": kind, "text": text, "at": iso(at)} for kind, text, at in rows]


def queue_position(tx: Tx, handoff: Handoff) -> int:
    tx.flush()
    return position_of(tx.connection, handoff)


def _load(tx: Tx, conversation_id: str) -> tuple[Conversation, Handoff | None]:
    conversation = tx.session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None:
        raise NotFound("No such conversation.")
    handoff = tx.session.get(Handoff, conversation.open_handoff_id) if conversation.open_handoff_id else None
    return conversation, handoff


def _staff_user(tx: Tx, user_id: str, field: str = "agent_id") -> User:
    user = tx.session.get(User, user_id)
    if user is None or not user.active:
        raise ValidationFailed("No such active staff member.", fields={field: "unknown or inactive"})
    return user


def _take(tx: Tx, conversation: Conversation, handoff: Handoff, user: User, *, event: str, by: StaffPrincipal) -> None:
    """Hand a conversation to `user` (claim, assign, transfer): handoff bookkeeping, join message, event."""
    tx.session.flush()
    now = utcnow()
    if handoff.claimed_at is None:
        handoff.claimed_at = now
        handoff.claimed_by = user.id
        handoff.claim_seq = conversation.last_seq
    handoff.status = "claimed"
    tx.session.add(handoff)
    if tx.session.get(HandoffAgent, (handoff.id, user.id)) is None:
        tx.session.add(HandoffAgent(handoff_id=handoff.id, user_id=user.id, conversation_id=conversation.id))
    system_message(tx, conversation.id, f"{user.name} joined the conversation.")
    conversation = tx.session.get(Conversation, conversation.id, populate_existing=True) or conversation
    tx.emit(
        event,
        conversation,
        {
            "handoff_id": handoff.id,
            "agent": {"id": user.id, "name": user.name},
            "by": {"id": by.id, "name": by.name},
        },
        integration=True,
        customer=True,
        queue=True,
    )
    tx.audit(event, actor_kind="staff", actor_id=by.id, conversation_id=conversation.id, agent_id=user.id)


def claim(db: Database, *, conversation_id: str, user: StaffPrincipal) -> None:
    with transaction(db) as tx:
        won = tx.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status == Status.QUEUED)  # type: ignore[arg-type]
            .values(status=Status.ASSIGNED, assignee_id=user.id, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        conversation, handoff = _load(tx, conversation_id)
        if not won:
            if conversation.status == Status.ASSIGNED and conversation.assignee_id == user.id:
                return
            if conversation.status == Status.ASSIGNED:
                raise Conflict("Someone else has already claimed this conversation.", code="already_assigned")
            raise Conflict(f"This conversation is not in the queue (it is {conversation.status}).", code="not_queued")
        assert handoff is not None
        _take(tx, conversation, handoff, _staff_user(tx, user.id), event="handoff.claimed", by=user)


def assign(db: Database, *, conversation_id: str, by: StaffPrincipal, agent_id: str) -> None:
    if not permissions.staff_may_assign(role=by.role):
        raise Forbidden("Only supervisors and admins can assign conversations.")
    with transaction(db) as tx:
        conversation, handoff = _load(tx, conversation_id)
        if conversation.status not in (Status.QUEUED, Status.ASSIGNED) or handoff is None:
            raise Conflict(f"This conversation is not with the desk (it is {conversation.status}).", code="not_queued")
        agent = _staff_user(tx, agent_id)
        if conversation.assignee_id == agent.id:
            return
        conversation.status = Status.ASSIGNED
        conversation.assignee_id = agent.id
        conversation.updated_at = utcnow()
        tx.session.add(conversation)
        _take(tx, conversation, handoff, agent, event="handoff.assigned", by=by)


def transfer(
    db: Database, *, conversation_id: str, by: StaffPrincipal, to_agent_id: str | None, to_skill: str | None
) -> None:
    with transaction(db) as tx:
        conversation, handoff = _load(tx, conversation_id)
        if not permissions.staff_may_finish(role=by.role, user_id=by.id, assignee_id=conversation.assignee_id):
            raise Forbidden("Only the assignee or a supervisor can transfer this conversation.")
        if conversation.status not in (Status.QUEUED, Status.ASSIGNED) or handoff is None:
            raise Conflict(f"This conversation is not with the desk (it is {conversation.status}).", code="not_queued")
        if to_agent_id is not None:
            agent = _staff_user(tx, to_agent_id, "to_agent_id")
            conversation.status = Status.ASSIGNED
            conversation.assignee_id = agent.id
            conversation.updated_at = utcnow()
            tx.session.add(conversation)
            _take(tx, conversation, handoff, agent, event="handoff.transferred", by=by)
            return
        previous = conversation.assignee_id
        conversation.status = Status.QUEUED
        conversation.assignee_id = None
        conversation.updated_at = utcnow()
        handoff.status = "queued"
        handoff.skills = [to_skill] if to_skill else handoff.skills
        tx.session.add_all([conversation, handoff])
        tx.session.flush()
        system_message(tx, conversation.id, QUEUED_TEXT)
        tx.emit(
            "handoff.transferred",
            conversation,
            {
                "handoff_id": handoff.id,
                "to_skill": to_skill,
                "from_agent_id": previous,
                "handoff": handoff_json(handoff),
                "position": queue_position(tx, handoff),
            },
            integration=True,
            customer=True,
            queue=True,
            agent_id=previous,
        )
        tx.audit(
            "handoff.transferred",
            actor_kind="staff",
            actor_id=by.id,
            conversation_id=conversation.id,
            to_skill=to_skill,
        )


def _finish(
    tx: Tx,
    conversation: Conversation,
    handoff: Handoff | None,
    by: StaffPrincipal,
    outcome: dict[str, Any],
    how: str,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Close the open handoff, write its learning entry; returns the agent who held it and the human part."""
    now = utcnow()
    agent_id = conversation.assignee_id
    exchanged: list[dict[str, Any]] = []
    if handoff is not None:
        handoff.status = how
        handoff.finished_at = now
        handoff.outcome = outcome
        handoff.recommendation_usage = settled(handoff.recommended_actions, handoff.recommendation_usage)
        tx.session.add(handoff)
        since = handoff.claim_seq if handoff.claim_seq is not None else handoff.start_seq
        rows = tx.session.execute(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.seq > since)  # type: ignore[arg-type]
            .order_by(Message.seq)  # type: ignore[arg-type]
        ).scalars()
        exchanged = [message_json(m) for m in rows]
        agent = tx.session.get(User, agent_id) if agent_id else None
        record_learning(tx, handoff, outcome, finished_as=how, agent=agent, at=now)
    conversation.assignee_id = None
    conversation.open_handoff_id = None
    conversation.updated_at = now
    tx.session.add(conversation)
    tx.session.flush()
    return agent_id, exchanged


def return_to_ai(db: Database, *, conversation_id: str, by: StaffPrincipal, outcome: dict[str, Any]) -> None:
    with transaction(db) as tx:
        conversation, handoff = _load(tx, conversation_id)
        if not permissions.staff_may_finish(role=by.role, user_id=by.id, assignee_id=conversation.assignee_id):
            raise Forbidden("Only the assignee or a supervisor can hand this conversation back.")
        if conversation.status != Status.ASSIGNED:
            raise Conflict(f"Nobody holds this conversation (it is {conversation.status}).", code="not_assigned")
        conversation.status = Status.BOT
        agent_id, exchanged = _finish(tx, conversation, handoff, by, outcome, "returned")
        system_message(tx, conversation.id, "You're back with the assistant.")
        conversation = tx.session.get(Conversation, conversation.id, populate_existing=True) or conversation
        tx.emit(
            "control.returned",
            conversation,
            {
                "handoff_id": handoff.id if handoff else None,
                "outcome": outcome,
                "note_for_ai": outcome.get("note_for_ai"),
                "messages": exchanged,
                "agent": {"id": by.id, "name": by.name},
            },
            integration=True,
            customer=True,
            agent_id=agent_id,
        )
        tx.audit("control.returned", actor_kind="staff", actor_id=by.id, conversation_id=conversation.id)


def resolve(db: Database, *, conversation_id: str, by: StaffPrincipal, outcome: dict[str, Any]) -> None:
    with transaction(db) as tx:
        conversation, handoff = _load(tx, conversation_id)
        if not permissions.staff_may_finish(role=by.role, user_id=by.id, assignee_id=conversation.assignee_id):
            raise Forbidden("Only the assignee or a supervisor can resolve this conversation.")
        if conversation.status in CLOSED:
            raise Conflict("This conversation is already closed.", code="conversation_closed")
        was_queued = conversation.status == Status.QUEUED
        conversation.status = Status.RESOLVED
        agent_id, _ = _finish(tx, conversation, handoff, by, outcome, "resolved")
        system_message(tx, conversation.id, "This conversation has been resolved. Thank you!")
        conversation = tx.session.get(Conversation, conversation.id, populate_existing=True) or conversation
        tx.emit(
            "conversation.resolved",
            conversation,
            {
                "handoff_id": handoff.id if handoff else None,
                "outcome": outcome,
                "by": {"id": by.id, "name": by.name},
            },
            integration=True,
            customer=True,
            queue=was_queued,
            agent_id=agent_id,
        )
        tx.audit("conversation.resolved", actor_kind="staff", actor_id=by.id, conversation_id=conversation.id)


def abandon(db: Database, *, conversation_id: str, actor_kind: str, actor_id: str | None = None) -> None:
    """The customer left while waiting in the queue."""
    with transaction(db) as tx:
        conversation, handoff = _load(tx, conversation_id)
        if conversation.status != Status.QUEUED:
            raise Conflict(
                f"Only a queued conversation can be abandoned (it is {conversation.status}).",
                code="not_queued",
            )
        now = utcnow()
        conversation.status = Status.ABANDONED
        conversation.open_handoff_id = None
        conversation.updated_at = now
        if handoff is not None:
            handoff.status = "abandoned"
            handoff.finished_at = now
            tx.session.add(handoff)
        tx.session.add(conversation)
        tx.emit(
            "conversation.abandoned",
            conversation,
            {"handoff_id": handoff.id if handoff else None, "waited_s": _waited(handoff, now)},
            integration=True,
            customer=True,
            queue=True,
        )
        tx.audit(
            "conversation.abandoned",
            actor_kind=actor_kind,
            actor_id=actor_id,
            conversation_id=conversation.id,
        )


def _parse_at(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _waited(handoff: Handoff | None, now: datetime) -> float | None:
    return None if handoff is None else (now - handoff.created_at).total_seconds()
