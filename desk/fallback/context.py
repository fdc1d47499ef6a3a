"""What a turn needs to know before it runs, in one read: the conversation's state, its AI providers, a flow or a
deferral in progress, and the recent history; and the context bundle the desk builds when the AI could not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from desk.auth.principals import IntegrationPrincipal
from desk.domain.signals import Signal
from desk.store.db import Database
from desk.store.models import Conversation, FallbackState, Integration, Message
from desk.store.shapes import message_json

from .providers import Provider

SUMMARY_QUOTE_CHARS = 300


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


def load_turn(db: Database, conversation_id: str, history_max: int) -> TurnContext | None:
    with db.read() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.integration_id is None:
            return None
        integration = session.get(Integration, conversation.integration_id)
        if integration is None or not integration.active:
            return None
        state = session.get(FallbackState, conversation_id)
        rows = session.exec(
            select(Message)
            .where(col(Message.conversation_id) == conversation_id)
            .order_by(col(Message.seq).desc())
            .limit(history_max)
        ).all()
    providers = []
    if integration.webhook_url:
        providers.append(Provider("primary", integration.webhook_url, integration.webhook_secret, integration.id))
    if integration.fallback_webhook_url:
        providers.append(
            Provider("secondary", integration.fallback_webhook_url, integration.webhook_secret, integration.id)
        )
    return TurnContext(
        conversation_id=conversation_id,
        status=conversation.status,
        integration=IntegrationPrincipal(integration.id, integration.name),
        providers=tuple(providers),
        state=state,
        history=[message_json(m) for m in reversed(rows)],
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
