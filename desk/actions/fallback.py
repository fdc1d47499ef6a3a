"""The fallback engine's state changes: what the desk says itself, flows in progress, handoffs it builds, deferrals,
callbacks, and deferred conversations coming back to the queue.

The engine (desk/fallback/engine.py) decides; these write. Each is one transaction that also writes its events,
among them `signal.detected` (one per detection, with its values) and `fallback.tier` (which tier took the turn).
The desk speaks as the assistant (author kind `ai`), so the customer sees one continuous chat; it only speaks
while it is in control: a human who took over in the meantime wins, and the late words are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, update
from sqlmodel import col, select

from desk.actions._tx import Tx, transaction
from desk.actions.conversations import AI_NAME, CUSTOMER_NAME, SeqState, append_message, next_seq, system_message
from desk.actions.handoffs import (
    QUEUED_TEXT,
    announce_queued,
    handoff_values,
    new_handoff,
    open_handoff,
    queue_position,
)
from desk.domain.callbacks import CallbackTurn
from desk.domain.flows import FlowTurn
from desk.domain.states import AuthorKind, Status
from desk.errors import Conflict, NotFound
from desk.ids import new_id
from desk.store.db import Database
from desk.store.models import Conversation, FallbackState, Handoff, built, column_values, table_of
from desk.store.shapes import handoff_json
from desk.store.types import iso, utcnow

FLOW = "flow"
CALLBACK = "callback"

_STATES = table_of(FallbackState)
_CONVERSATIONS = table_of(Conversation)
_DELETE_STATE = delete(_STATES).where(_STATES.c.conversation_id == bindparam("cid"))
_INSERT_HANDOFF = insert(table_of(Handoff))
_STATUS = select(_CONVERSATIONS.c.status).where(_CONVERSATIONS.c.id == bindparam("cid"))
_QUEUE_CONVERSATION = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("cid"), _CONVERSATIONS.c.status == Status.BOT.value)
    .values(
        last_seq=_CONVERSATIONS.c.last_seq + bindparam("count"),
        status=Status.QUEUED.value,
        assignee_id=None,
        open_handoff_id=bindparam("hid"),
        updated_at=bindparam("now"),
    )
    .returning(
        _CONVERSATIONS.c.last_seq,
        _CONVERSATIONS.c.integration_id,
        CUSTOMER_NAME,
    )
)


@dataclass(frozen=True)
class Ref:
    """What an event needs of its conversation, when the action has not loaded the row."""

    id: str
    integration_id: str | None
    assignee_id: str | None = None


@dataclass(frozen=True)
class Trace:
    """What a turn detected, and the tier that took it: written with whatever the turn does."""

    signals: Sequence[dict[str, Any]] = ()
    tier: dict[str, Any] | None = None

    def write(self, tx: Tx, conversation: Ref | Conversation) -> None:
        for data in self.signals:
            tx.emit("signal.detected", conversation, data)
        if self.tier is not None:
            tx.emit("fallback.tier", conversation, self.tier)


def _speak(tx: Tx, conversation_id: str, texts: Iterable[str], *, allowed: frozenset[str]) -> None:
    """Say `texts` as the assistant (their seqs taken in one statement), if the conversation's status allows."""
    said = [text for text in texts if text]
    if not said:
        return
    state = next_seq(tx, conversation_id, len(said))
    if state.status not in allowed:
        raise _not_in_control(state.status)
    _say(tx, state, said)


def _say(tx: Tx, state: SeqState, texts: Sequence[str]) -> None:
    """Write `texts` as the assistant's, at the seqs up to and including `state.last_seq`, taken already."""
    first = state.last_seq - len(texts) + 1
    for offset, text in enumerate(texts):
        append_message(tx, replace(state, last_seq=first + offset), kind=AuthorKind.AI, text=text, author_name=AI_NAME)


_BOT = frozenset({Status.BOT.value})
_DEFERRED = frozenset({Status.DEFERRED.value})


def _not_in_control(status: str) -> Conflict:
    return Conflict(f"The desk is no longer answering here (it is {status}).", code="not_in_control")


def _locked(tx: Tx, conversation_id: str) -> Conversation:
    conversation = tx.session.get(
        Conversation, conversation_id, with_for_update=not tx.db.is_sqlite, populate_existing=True
    )
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def _clear_state(tx: Tx, conversation_id: str) -> None:
    tx.flush()
    tx.connection.execute(_DELETE_STATE, {"cid": conversation_id})


def reply(db: Database, *, ref: Ref, text: str, trace: Trace) -> None:
    """The AI's answer, said as the AI, with what the turn detected (a slow answer, a flagged word)."""
    with transaction(db) as tx:
        _speak(tx, ref.id, [text], allowed=_BOT)
        trace.write(tx, ref)


def record(db: Database, *, ref: Ref, trace: Trace) -> None:
    with transaction(db) as tx:
        trace.write(tx, ref)


def record_ai_stats(db: Database, *, counts: dict[str, int], seconds: float) -> None:
    """One process's AI turn counts over the last `seconds`: stored for the KPIs, sent to nobody."""
    with transaction(db) as tx:
        tx.emit("ai.stats", None, {"counts": counts, "seconds": round(seconds, 3)}, staff=False)


def start_flow(
    db: Database,
    *,
    ref: Ref,
    flow: str,
    turn: FlowTurn,
    intro: str,
    reason: str,
    context: dict[str, Any],
    policy_version: str,
    trace: Trace,
) -> None:
    with transaction(db) as tx:
        _speak(tx, ref.id, [intro, turn.say], allowed=_BOT)
        _clear_state(tx, ref.id)
        if not turn.done:
            tx.session.add(
                FallbackState(
                    conversation_id=ref.id,
                    kind=FLOW,
                    name=flow,
                    step=turn.step,
                    attempts=turn.attempts,
                    collected=turn.collected,
                    reason_code=reason,
                    context=context,
                    policy_version=policy_version,
                )
            )
        trace.write(tx, ref)


def continue_flow(db: Database, *, ref: Ref, turn: FlowTurn, trace: Trace) -> None:
    """The next step of a flow in progress; a flow that is done or gave up is removed."""
    with transaction(db) as tx:
        state = tx.session.get(FallbackState, ref.id)
        if state is None or state.kind != FLOW:
            return
        _speak(tx, ref.id, [turn.say], allowed=_BOT)
        if turn.done or turn.gave_up:
            tx.session.delete(state)
        else:
            state.step, state.attempts, state.collected = turn.step, turn.attempts, turn.collected
            state.updated_at = utcnow()
            tx.session.add(state)
        trace.write(tx, ref)


def end_flow(db: Database, *, conversation_id: str) -> None:
    with transaction(db) as tx:
        _clear_state(tx, conversation_id)


def hand_to_human(
    db: Database,
    *,
    ref: Ref,
    bundle: dict[str, Any],
    say: str,
    sla_s: int,
    policy_version: str,
    trace: Trace,
) -> str:
    """The human tier: tell the customer what happens next and queue the conversation with the bundle, in one
    transaction (the words and the place in the queue come together, or neither). Returns the handoff id.

    In SQL rather than through the ORM: in an AI outage every turn of a burst comes here."""
    said = [say] if say else []
    handoff_id = new_id()
    with transaction(db) as tx:
        # One statement takes the seqs of the words and of the queue's notice, checks that the desk is still in
        # control, and queues the conversation (its row stays locked until commit).
        params = {"cid": ref.id, "count": len(said) + 1, "hid": handoff_id, "now": utcnow()}
        row = tx.connection.execute(_QUEUE_CONVERSATION, params).first()
        if row is None:
            status = tx.connection.execute(_STATUS, {"cid": ref.id}).scalar()
            raise NotFound("No such conversation.") if status is None else _not_in_control(status)
        notice = SeqState(ref.id, row.last_seq, Status.QUEUED.value, None, row.integration_id, row.name)
        _say(tx, replace(notice, last_seq=notice.last_seq - 1, status=Status.BOT.value), said)
        _clear_state(tx, ref.id)  # a flow that gave up: the human takes over from here
        trace.write(tx, ref)
        start_seq = notice.last_seq - 1  # the words, or (with none) the last seq before the handoff
        values = handoff_values(
            tx, ref.id, start_seq, bundle, sla_s=sla_s, policy_version=policy_version, id=handoff_id
        )
        handoff = built(Handoff, **values)
        tx.connection.execute(_INSERT_HANDOFF, [column_values(handoff)])
        announce_queued(tx, ref, handoff, actor_kind="system", actor_id=None, notice=notice)
        return handoff.id
    raise AssertionError("unreachable")  # pragma: no cover


def defer(
    db: Database,
    *,
    ref: Ref,
    bundle: dict[str, Any],
    cause: str,
    until: datetime,
    say: Sequence[str],
    sla_s: int,
    policy_version: str,
    trace: Trace,
) -> str:
    """No human can take it now: the conversation waits as `deferred` until `until` (or the time the customer
    names), and the desk asks how to get back to them."""
    with transaction(db) as tx:
        _speak(tx, ref.id, say, allowed=_BOT)
        conversation = _locked(tx, ref.id)
        if conversation.status != Status.BOT:
            raise _not_in_control(conversation.status)
        _clear_state(tx, ref.id)
        handoff = new_handoff(tx, conversation, bundle, sla_s=sla_s, policy_version=policy_version, status="deferred")
        deferral = {"cause": cause, "deferred_at": iso(utcnow()), "callback": None}
        handoff.meta = {**handoff.meta, "deferral": deferral}
        conversation.status = Status.DEFERRED
        conversation.assignee_id = None
        conversation.deferred_until = until
        tx.session.add_all([handoff, conversation])
        tx.session.add(
            FallbackState(
                conversation_id=ref.id,
                kind=CALLBACK,
                name=cause,
                reason_code=bundle["reason"]["code"],
                context={"default_at": iso(until)},
                policy_version=policy_version,
            )
        )
        tx.session.flush()
        tx.emit(
            "conversation.deferred",
            conversation,
            {
                "handoff_id": handoff.id,
                "cause": cause,
                "reason": bundle["reason"]["code"],
                "deferred_until": iso(until),
                "policy_version": policy_version,
                "callback": None,
            },
            integration=True,
            customer=True,
        )
        tx.audit("conversation.deferred", actor_kind="system", actor_id=None, conversation_id=ref.id, cause=cause)
        trace.write(tx, ref)
        return handoff.id
    raise AssertionError("unreachable")  # pragma: no cover


def continue_callback(db: Database, *, ref: Ref, turn: CallbackTurn) -> None:
    """The customer answered a deferral's question; once both are answered, `callback.scheduled` goes out."""
    with transaction(db) as tx:
        state = tx.session.get(FallbackState, ref.id)
        if state is None or state.kind != CALLBACK:
            return
        _speak(tx, ref.id, [turn.say], allowed=_DEFERRED)
        conversation = _locked(tx, ref.id)
        if not turn.done:
            state.step, state.attempts = turn.step, turn.attempts
            state.collected = {**state.collected, "contact": turn.contact}
            state.updated_at = utcnow()
            tx.session.add(state)
            return
        tx.session.delete(state)
        callback = {"contact": turn.contact, "at": iso(turn.at)}
        handoff = tx.session.get(Handoff, conversation.open_handoff_id) if conversation.open_handoff_id else None
        if handoff is not None:
            deferral = dict(handoff.meta.get("deferral") or {})
            handoff.meta = {**handoff.meta, "deferral": {**deferral, "callback": callback}}
            tx.session.add(handoff)
        if turn.at is not None:
            conversation.deferred_until = turn.at
        tx.session.add(conversation)
        tx.session.flush()
        tx.emit(
            "callback.scheduled",
            conversation,
            {
                "handoff_id": conversation.open_handoff_id,
                **callback,
                "deferred_until": iso(conversation.deferred_until),
            },
            integration=True,
            customer=True,
        )
        tx.audit("callback.scheduled", actor_kind="customer", actor_id=None, conversation_id=ref.id)


def due_for_requeue(db: Database, *, now: datetime, limit: int = 100) -> list[str]:
    with db.read() as session:
        rows = session.exec(
            select(Conversation.id)
            .where(col(Conversation.status) == Status.DEFERRED, col(Conversation.deferred_until) <= now)
            .order_by(col(Conversation.deferred_until))
            .limit(limit)
        )
        return list(rows)


def requeue(db: Database, *, conversation_id: str, now: datetime) -> bool:
    """A deferred conversation whose time has come enters the queue. A conditional update: with several
    processes sweeping, exactly one moves it."""
    with transaction(db) as tx:
        won = tx.session.execute(
            update(Conversation)
            .where(
                col(Conversation.id) == conversation_id,
                col(Conversation.status) == Status.DEFERRED,
                col(Conversation.deferred_until) <= now,
            )
            .values(status=Status.QUEUED, deferred_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
            return False
        conversation = _locked(tx, conversation_id)
        _clear_state(tx, conversation_id)  # the deferral's questions, unanswered
        handoff = tx.session.get(Handoff, conversation.open_handoff_id) if conversation.open_handoff_id else None
        if handoff is None:
            bundle = {"reason": {"code": "other", "detail": "Deferred conversation back for a callback."}}
            open_handoff(tx, conversation, bundle, actor_kind="system", actor_id=None)
            return True
        sla = handoff.sla_due_at - handoff.created_at
        deferral = dict(handoff.meta.get("deferral") or {})
        handoff.meta = {**handoff.meta, "deferral": {**deferral, "requeued_at": iso(now)}}
        handoff.status = "queued"
        handoff.created_at = now
        handoff.sla_due_at = now + sla
        handoff.start_seq = conversation.last_seq
        tx.session.add(handoff)
        tx.session.flush()
        system_message(tx, conversation_id, QUEUED_TEXT)
        tx.emit(
            "handoff.requeued",
            conversation,
            {
                "handoff": handoff_json(handoff),
                "position": queue_position(tx, handoff),
                "callback": deferral.get("callback"),
            },
            integration=True,
            customer=True,
            queue=True,
        )
        tx.audit("handoff.requeued", actor_kind="system", actor_id=None, conversation_id=conversation_id)
        return True
    raise AssertionError("unreachable")  # pragma: no cover
