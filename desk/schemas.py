"""Request and reply bodies of the contract (CONTRACT.md sections 4-6), validated with pydantic.

Unknown fields are ignored, so AI agents can send more than Desk reads; known fields are checked strictly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from desk.domain.routing import PriorityName, ReasonCode

MAX_TEXT = 20_000
Short = Field(default=None, max_length=200)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class CustomerIn(_Body):
    external_id: str | None = Short
    name: str | None = Short
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    locale: str | None = Field(default=None, max_length=35)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ConversationCreate(_Body):
    customer: CustomerIn = Field(default_factory=CustomerIn)
    channel: str = Field(default="web", min_length=1, max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict)


class MessageCreate(_Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    client_id: str | None = Field(default=None, min_length=1, max_length=100)
    internal: bool = False


class Reason(_Body):
    code: ReasonCode
    detail: str | None = Field(default=None, max_length=2000)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)


class TranscriptTurn(_Body):
    role: Literal["customer", "ai", "agent", "system"]
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    at: datetime | None = None


class Classification(BaseModel):
    model_config = ConfigDict(extra="allow")
    intent: str | None = Short
    sentiment: str | None = Short
    topics: list[str] = Field(default_factory=list)


class RecommendedAction(_Body):
    kind: Literal["reply", "action", "link"]
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=MAX_TEXT)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)


class BundleFields(_Body):
    """The context bundle a human needs (reason, summary, classification, recommended actions...)."""

    reason: Reason
    priority: PriorityName = "normal"
    skills: list[str] = Field(default_factory=list, max_length=20)
    transcript: list[TranscriptTurn] | None = Field(default=None, max_length=1000)
    classification: Classification = Field(default_factory=Classification)
    summary: str | None = Field(default=None, max_length=MAX_TEXT)
    recommended_actions: list[RecommendedAction] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)


class EscalationCreate(BundleFields):
    conversation_id: str | None = Field(default=None, max_length=64)
    customer: CustomerIn | None = None
    channel: str = Field(default="web", min_length=1, max_length=32)

    def missing_fields(self) -> dict[str, str]:
        """Rules across fields, reported at the field a client must fix."""
        if self.conversation_id is None and not self.transcript:
            return {"transcript": "required when no conversation_id is given"}
        return {}


class TurnReply(_Body):
    reply: str | None = Field(default=None, max_length=MAX_TEXT)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    escalate: BundleFields | None = None
    # Beyond the contract, read by the fallback engine: the intent the AI recognised (per-intent confidence
    # thresholds, flows chosen by intent) and the data it lacked to answer (the missing_data ladder).
    intent: str | None = Field(default=None, max_length=200)
    missing_data: list[str] = Field(default_factory=list, max_length=20)

    @property
    def recognised_intent(self) -> str | None:
        if self.intent:
            return self.intent
        return self.escalate.classification.intent if self.escalate is not None else None


class Outcome(BaseModel):
    model_config = ConfigDict(extra="allow")
    resolution: str | None = Field(default=None, max_length=MAX_TEXT)
    recommendation_feedback: Literal["used", "edited", "ignored", "wrong"] | None = None
    note_for_ai: str | None = Field(default=None, max_length=MAX_TEXT)
    tags: list[str] = Field(default_factory=list, max_length=50)


class OutcomeBody(_Body):
    outcome: Outcome = Field(default_factory=Outcome)


class TransferBody(_Body):
    to_agent_id: str | None = Field(default=None, max_length=64)
    to_skill: str | None = Field(default=None, min_length=1, max_length=64)

    def missing_fields(self) -> dict[str, str]:
        if (self.to_agent_id is None) == (self.to_skill is None):
            return {"to_agent_id": "give exactly one of to_agent_id and to_skill"}
        return {}


class AssignBody(_Body):
    agent_id: str = Field(min_length=1, max_length=64)


class LoginBody(_Body):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
