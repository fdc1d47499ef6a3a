"""The fallback policy as values (CONTRACT.md section 8), and the tier ladder's decisions. Pure: no I/O.

A policy maps each failure mode (reason code) to its ladder of tiers, tried in order until one can take the
conversation:

- `retry`: the AI call itself, with retries, a circuit breaker and a second provider (only for `system_error`:
  the other reasons come from an answer that arrived);
- `deterministic`: a scripted flow or template of the policy, chosen by intent or keywords;
- `human`: the live queue, with the policy's priority, skills and SLA for the reason;
- `deferral`: a callback or follow-up when no human can take it (closed, nobody eligible online, queue too long).

`desk/fallback/policy_file.py` reads a TOML file into these values (docs/fallback.md describes the format); the
engine in `desk/fallback/engine.py` asks `next_tier` where to go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import get_args

from desk.domain.routing import ReasonCode


class Tier(StrEnum):
    RETRY = "retry"
    DETERMINISTIC = "deterministic"
    HUMAN = "human"
    DEFERRAL = "deferral"


REASON_CODES: tuple[str, ...] = get_args(ReasonCode)  # the failure modes a policy maps, as the contract spells them


class GuardrailAction(StrEnum):
    HANDOFF = "handoff"  # straight to a human, with the rule's priority
    BLOCK = "block"  # the AI's answer (or the customer's message, for the AI) is withheld; the ladder runs
    FLAG = "flag"  # recorded as a signal, nothing else


@dataclass(frozen=True)
class BreakerPolicy:
    window_s: float = 30.0  # failure rate measured over this sliding window
    min_calls: int = 5  # no opening on fewer calls than this in the window
    failure_rate: float = 0.5  # open at or over this share of failed calls
    cooldown_s: float = 15.0  # open → half-open after this
    half_open_calls: int = 1  # trial calls let through while half-open


@dataclass(frozen=True)
class ProviderPolicy:
    timeout_s: float = 8.0  # per attempt
    retries: int = 1  # extra attempts on this provider after a failed one
    max_concurrent: int = 64  # calls in flight; over it, the call fails over at once


@dataclass(frozen=True)
class AIPolicy:
    primary: ProviderPolicy = field(default_factory=ProviderPolicy)  # the integration's webhook_url
    secondary: ProviderPolicy = field(default_factory=ProviderPolicy)  # its fallback_webhook_url, when set
    backoff_s: float = 0.2  # first backoff between attempts; doubles, full jitter
    backoff_max_s: float = 2.0
    latency_limit_s: float = 5.0  # an answer slower than this is a `latency` signal (and still used)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)


@dataclass(frozen=True)
class Frustration:
    human_phrases: tuple[str, ...] = ()  # the customer asks for a person
    negative_words: tuple[str, ...] = ()
    negative_threshold: int = 2  # negative words in one message that count as frustration
    repeat_similarity: float = 0.85  # a customer message this similar to one of theirs before is a repeat
    repeats: int = 1  # repeats that count as frustration


@dataclass(frozen=True)
class Detection:
    confidence_threshold: float = 0.5
    intent_thresholds: dict[str, float] = field(default_factory=dict)
    frustration: Frustration = field(default_factory=Frustration)

    def threshold_for(self, intent: str | None) -> float:
        if intent is not None and intent in self.intent_thresholds:
            return self.intent_thresholds[intent]
        return self.confidence_threshold


@dataclass(frozen=True)
class Guardrail:
    name: str
    category: str
    applies_to: tuple[str, ...]  # "customer" (their message), "ai" (the AI's answer)
    keywords: tuple[str, ...]
    patterns: tuple[str, ...]  # regular expressions, matched case-insensitively
    action: GuardrailAction
    priority: str = "high"
    skills: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReasonPolicy:
    tiers: tuple[Tier, ...]
    priority: str = "normal"
    skills: tuple[str, ...] = ()
    sla_s: int = 900
    # What the customer hears when this tier takes the conversation ("" says nothing).
    messages: dict[Tier, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowStep:
    field: str  # the answer is kept under this name and can be used as {field} in later text
    prompt: str
    pattern: str | None = None  # a regular expression the answer must match (searched, case-insensitive)
    retry_prompt: str | None = None


@dataclass(frozen=True)
class Flow:
    """A template (no steps) or a small scripted flow, answered by Desk itself."""

    name: str
    intents: tuple[str, ...]
    keywords: tuple[str, ...]
    steps: tuple[FlowStep, ...]
    answer: str  # with {field} placeholders for what the steps collected
    max_attempts: int = 3  # answers per step that may fail its pattern before the flow gives up (→ next tier)


@dataclass(frozen=True)
class Hours:
    """Weekly opening hours in a time zone, and holidays (dates in that zone) when the desk is closed.

    `weekly[0]` is Monday; each day holds (start, end) minutes after midnight, end exclusive, end > start.
    No `Hours` at all means always open.
    """

    timezone: str
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # seven days
    holidays: frozenset[str] = frozenset()  # "YYYY-MM-DD"


@dataclass(frozen=True)
class Deferral:
    when_closed: bool = True
    when_nobody_online: bool = False
    max_queue_length: int = 0  # queued conversations at or over this → defer; 0: no limit
    max_wait_s: float = 0.0  # estimated wait over this → defer; 0: no limit
    requeue_after_s: float = 3600.0  # when the customer names no time and the desk is open
    ask_contact: str = "How can we reach you: an email address or a phone number?"
    ask_time: str = "When would suit you? (e.g. 'tomorrow 10:00', '14:30', or 'any time')"
    confirm: str = "Thank you. We'll get back to you at {contact} around {time}."


@dataclass(frozen=True)
class Policy:
    version: str  # the label and a hash of the file's bytes: recorded on every handoff it routes
    ai: AIPolicy
    detect: Detection
    guardrails: tuple[Guardrail, ...]
    reasons: dict[str, ReasonPolicy]
    flows: tuple[Flow, ...]
    hours: Hours | None
    deferral: Deferral
    source: str = "built-in"  # the file it came from

    def reason(self, code: str) -> ReasonPolicy:
        return self.reasons.get(code) or self.reasons["other"]


@dataclass(frozen=True)
class Floor:
    """What the deferral tier needs to know of the desk right now."""

    open_now: bool
    eligible_online: int  # staff online who could take the conversation (its skills)
    queue_length: int
    estimated_wait_s: float | None  # None: no recent claims to estimate from


def deferral_cause(policy: Policy, floor: Floor) -> str | None:
    """Why a human cannot take a conversation now ("closed", "nobody_online", "queue_full", "wait_too_long"), or
    None when the queue can take it."""
    rules = policy.deferral
    if rules.when_closed and not floor.open_now:
        return "closed"
    if rules.when_nobody_online and floor.eligible_online == 0:
        return "nobody_online"
    if rules.max_queue_length and floor.queue_length >= rules.max_queue_length:
        return "queue_full"
    if rules.max_wait_s and floor.estimated_wait_s is not None and floor.estimated_wait_s > rules.max_wait_s:
        return "wait_too_long"
    return None


def tiers_after(policy: Policy, reason: str, tier: Tier | None) -> tuple[Tier, ...]:
    """The tiers of `reason`'s ladder that come after `tier` (all of them for None), in order."""
    ladder = policy.reason(reason).tiers
    if tier is None or tier not in ladder:
        return ladder if tier is None else tuple(t for t in ladder if t != Tier.RETRY)
    return ladder[ladder.index(tier) + 1 :]


def flow_for(policy: Policy, *, intent: str | None, text: str) -> Flow | None:
    """The first flow whose intents name `intent`, else the first whose keywords occur in `text`."""
    if intent:
        for flow in policy.flows:
            if intent in flow.intents:
                return flow
    lowered = text.casefold()
    for flow in policy.flows:
        if any(keyword.casefold() in lowered for keyword in flow.keywords):
            return flow
    return None
