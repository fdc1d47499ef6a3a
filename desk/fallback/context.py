"""What a turn needs to know before it runs, in one read: the conversation's state, its AI providers, a flow or a
deferral in progress, and the recent history; and the context bundle the desk builds when the AI could not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, true

from desk.auth.principals import IntegrationPrincipal
from desk.domain.signals import Signal
from desk.store.db import Database
from desk.store.models import Conversation, FallbackState, Integration, Message, table_of
from desk.store.shapes import message_shape

from .providers import Provider

SUMMARY_QUOTE_CHARS = 300
_STATE_COLUMNS = (
    "kind",
    "name",
    "step",
    "attempts",
    "collected",
    "reason_code",
    "context",
    "policy_version",
    "started_at",
    "updated_at",
)
_MESSAGE_COLUMNS = ("id", "seq", "author_kind", "author_name", "text", "created_at", "client_id")


@dataclass(frozen=True)
class TurnContext:
    conversation_id: str
    status: str
    integration: IntegrationPrincipal
    providers: tuple[Provider, ...]  # primary first; empty when the AI does not take turns by webhook
    state: FallbackState | None
    history: list[dict[str, Any]]  # the last messages, oldest first, as the API shapes them

    def earlier_customer_texts(self, seq: int | None) -> list[str]:
        return [
            m["text"] for m in self.history if m["author"]["kind"] == "customer" and (seq is None or m["seq"] < seq)
        ]


_CONVERSATIONS = table_of(Conversation)
_INTEGRATIONS = table_of(Integration)
_STATES = table_of(FallbackState)
_MESSAGES = table_of(Message)
# One statement for the conversation, its integration and a flow or deferral in progress: every turn reads it,
# and in an AI outage every turn of a burst does, so it is SQL rather than three ORM loads.
_TURN = (
    select(
        _CONVERSATIONS.c.status,
        _INTEGRATIONS.c.id,
        _INTEGRATIONS.c.name,
        _INTEGRATIONS.c.webhook_url,
        _INTEGRATIONS.c.fallback_webhook_url,
        _INTEGRATIONS.c.webhook_secret,
        *(_STATES.c[name] for name in _STATE_COLUMNS),
    )
    .select_from(_CONVERSATIONS)
    .join(_INTEGRATIONS, _INTEGRATIONS.c.id == _CONVERSATIONS.c.integration_id)
    .outerjoin(_STATES, _STATES.c.conversation_id == _CONVERSATIONS.c.id)
    .where(_CONVERSATIONS.c.id == bindparam("cid"), _INTEGRATIONS.c.active == true())
)
_HISTORY = (
    select(*(_MESSAGES.c[name] for name in _MESSAGE_COLUMNS))
    .where(_MESSAGES.c.conversation_id == bindparam("cid"))
    .order_by(_MESSAGES.c.seq.desc())
    .limit(bindparam("limit"))
)


def load_turn(db: Database, conversation_id: str, history_max: int) -> TurnContext | None:
    """What a turn needs, or None for a conversation without an active integration (nobody to ask)."""
    with db.read_connection() as connection:
        row = connection.execute(_TURN, {"cid": conversation_id}).first()
        if row is None:
            return None
        history = connection.execute(_HISTORY, {"cid": conversation_id, "limit": history_max}).all()
    status, integration_id, name, webhook_url, fallback_url, secret = row[:6]
    state_values = dict(zip(_STATE_COLUMNS, row[6:], strict=True))
    providers = []
    if webhook_url:
        providers.append(Provider("primary", webhook_url, secret, integration_id))
    if fallback_url:
        providers.append(Provider("secondary", fallback_url, secret, integration_id))
    return TurnContext(
        conversation_id=conversation_id,
        status=status,
        integration=IntegrationPrincipal(integration_id, name),
        providers=tuple(providers),
        state=None if state_values["kind"] is None else FallbackState(conversation_id=conversation_id, **state_values),
        history=[message_shape(*m) for m in reversed(history)],
    )


def desk_bundle(
    *,
    reason: str,
    detail: str,
    priority: str,
    skills: Sequence[str],
    signals: Sequence[Signal],
    last_text: str,
    intent: str | None = None,
    confidence: float | None = None,
    draft: str | None = None,
    collected: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The context bundle for a handoff the desk routes itself. The transcript is left out: the handoff copies
    the whole conversation from the database."""
    quote = last_text if len(last_text) <= SUMMARY_QUOTE_CHARS else last_text[:SUMMARY_QUOTE_CHARS] + "…"
    parts = [f"{detail}.", f'The customer\'s last message: "{quote}"']
    if collected:
        parts.append("Collected so far: " + ", ".join(f"{k} = {v}" for k, v in collected.items()) + ".")
    seen = [_signal_phrase(s) for s in signals]
    if seen:
        parts.append("Detected: " + "; ".join(seen) + ".")
    actions: list[dict[str, Any]] = []
    if draft:
        title = "The AI's draft answer" + (f" (confidence {confidence:.2f})" if confidence is not None else "")
        actions.append({"kind": "reply", "title": title, "body": draft, "confidence": confidence})
    bundle: dict[str, Any] = {
        "reason": {"code": reason, "detail": detail},
        "priority": priority,
        "skills": list(skills),
        "summary": " ".join(parts),
        "classification": {"intent": intent} if intent else {},
        "recommended_actions": actions,
        "metadata": {"routed_by": "desk", "signals": [s.event_data() for s in signals], "collected": collected or {}},
    }
    if confidence is not None:
        bundle["reason"]["confidence"] = confidence
    return bundle


def _signal_phrase(signal: Signal) -> str:
    values = signal.values
    if signal.kind == "guardrail":
        return f"guardrail {values.get('rule')} ({values.get('where')})"
    if signal.kind == "frustration":
        return f"frustration: {values.get('kind')}"
    if signal.kind == "low_confidence":
        return f"confidence {values.get('confidence')} under {values.get('threshold')}"
    if signal.kind == "ai_error":
        return f"AI error: {values.get('error')} after {values.get('attempts')} attempt(s)"
    if signal.kind == "latency":
        return f"slow answer: {values.get('latency_ms')} ms"
    if signal.kind == "missing_data":
        return "missing data: " + ", ".join(str(f) for f in values.get("fields", []))
    return signal.kind
