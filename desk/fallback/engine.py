"""The fallback engine: every AI turn goes through it (docs/fallback.md has the whole picture).

For each customer message while the desk is in control it detects, decides and acts:

1. Detect on the customer's message: guardrails and frustration (desk/domain/signals.py). A guardrail that hands
   off or blocks keeps the message from the AI and routes at once (`policy_violation`).
2. A flow or a deferral in progress takes the message instead of the AI (unless the customer asks for a person).
3. The AI turn (tier `retry`): signed POST to the integration's webhook with time limits, retries, a breaker and a
   second provider (desk/fallback/providers.py). A turn that fails goes down the `system_error` ladder.
4. Detect on the answer: confidence under the threshold, guardrails on the AI's text, latency, missing data. The
   deciding signal (if any) withholds the answer and picks the ladder; the AI's own escalation goes to the human
   tier with its bundle.
5. Down the ladder: deterministic flow → human (unless deferral applies: closed, nobody online, queue too long or
   slow) → deferral. The customer always hears what happens next, in the words of the policy.

Every detection is a `signal.detected` event and every tier taken a `fallback.tier` event, written in the same
transaction as what the tier does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from desk.actions import fallback as act
from desk.actions.outlook import Outlook
from desk.domain import callbacks, flows
from desk.domain.hours import describe, is_open, next_opening
from desk.domain.policy import AIPolicy, Floor, Policy, Tier, deferral_cause, flow_for, tiers_after
from desk.domain.signals import Signal, ai_error, check_ai_text, check_answer, check_customer, deciding, redact
from desk.errors import DeskError
from desk.schemas import TurnReply
from desk.store.queue import estimated_wait_s
from desk.store.types import utcnow

from .context import TurnContext, desk_bundle, load_turn
from .providers import CallResult, Providers

log = logging.getLogger(__name__)

HISTORY_MAX = 50
AI_AUTHOR = {"kind": "ai", "name": "Assistant"}
ASKS_FOR_PERSON = frozenset({"user_request", "user_frustration"})
_ERROR_DETAIL = {
    "timeout": "AI webhook unreachable: timeout",
    "connect_error": "AI webhook unreachable: connection failed",
    "malformed": "AI webhook answered malformed JSON",
    "breaker_open": "AI provider unavailable: circuit breaker open",
    "busy": "AI provider unavailable: too many calls in flight",
}
_CAUSE_TEXT = {
    "closed": "We're closed right now; we open again {next_open}.",
    "nobody_online": "",
    "queue_full": "Our team is very busy right now.",
    "wait_too_long": "Our team is very busy right now.",
    "policy": "",
}

Call = Callable[..., Awaitable[Any]]  # Runtime.call: runs fn(db, ...) off the event loop
Transient = Callable[[dict[str, Any]], Awaitable[None]]
OutlookFor = Callable[[Sequence[str]], Awaitable[Outlook]]


@dataclass
class Turn:
    """One customer message on its way down the ladder."""

    ctx: TurnContext
    policy: Policy
    text: str
    signals: list[Signal] = field(default_factory=list)
    intent: str | None = None
    confidence: float | None = None
    draft: str | None = None  # the AI's answer, withheld
    ai_bundle: dict[str, Any] | None = None  # the AI's own escalation
    first_words: str = ""  # the AI's handoff message, said before the tier's own
    collected: dict[str, str] | None = None

    @property
    def ref(self) -> act.Ref:
        return act.Ref(self.ctx.conversation_id, self.ctx.integration.id)


class FallbackEngine:
    def __init__(
        self,
        call: Call,
        providers: Providers,
        policy: Callable[[], Policy],
        outlook: OutlookFor,
        *,
        transient: Transient | None = None,
    ) -> None:
        self.call = call
        self.providers = providers
        self.policy = policy
        self.outlook = outlook
        self.transient = transient
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # AI turns since the last flush, for the KPIs (written as `ai.stats` events by the runtime): turns answered
        # and failed, and every attempt by provider role and outcome.
        self.stats: Counter[str] = Counter()

    def take_stats(self) -> dict[str, int]:
        taken, self.stats = dict(self.stats), Counter()
        return taken

    def schedule(self, conversation_id: str, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._turn(conversation_id, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _turn(self, conversation_id: str, message: dict[str, Any]) -> None:
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._users[conversation_id] = self._users.get(conversation_id, 0) + 1
        try:
            async with lock:  # one turn at a time per conversation, in message order
                await self._run(conversation_id, message)
        except DeskError as exc:
            # e.g. a human took over while the AI was thinking: late words are dropped, never forced in.
            log.info("turn for %s not applied: %s", conversation_id, exc.message)
        except Exception:
            log.exception("turn failed for %s", conversation_id)
        finally:
            self._users[conversation_id] -= 1
            if self._users[conversation_id] == 0:
                del self._users[conversation_id]
                self._locks.pop(conversation_id, None)

    async def _run(self, conversation_id: str, message: dict[str, Any]) -> None:
        ctx = await self.call(load_turn, conversation_id, HISTORY_MAX)
        if ctx is None:
            return
        policy = self.policy()
        turn = Turn(ctx, policy, message["text"])
        turn.signals = check_customer(policy, turn.text, ctx.earlier_customer_texts(message.get("seq")))
        if ctx.status == "deferred":
            await self._callback(turn)
            return
        if ctx.status != "bot":
            return
        guarded = [s for s in turn.signals if s.kind == "guardrail" and s.reason is not None]
        if guarded:  # kept from the AI, whatever else is going on
            await self._descend(turn, "policy_violation", tiers_after(policy, "policy_violation", Tier.DETERMINISTIC))
            return
        if ctx.state is not None and ctx.state.kind == act.FLOW:
            await self._in_flow(turn)
            return
        if not ctx.providers:  # an AI that reads the event feed and posts through the API: it decides
            if turn.signals:
                await self.call(act.record, ref=turn.ref, trace=act.Trace([s.event_data() for s in turn.signals]))
            return
        await self._ask_ai(turn, message)

    async def _ask_ai(self, turn: Turn, message: dict[str, Any]) -> None:
        ctx, policy = turn.ctx, turn.policy
        body = json.dumps(
            {"type": "turn", "conversation_id": ctx.conversation_id, "message": message, "history": ctx.history},
            separators=(",", ":"),
        ).encode()
        if self.transient is not None:  # "The assistant is typing…" while the AI thinks
            await self.transient({"conversation_id": ctx.conversation_id, "to": "customer", "author": AI_AUTHOR})
        ladder = policy.reason("system_error").tiers
        providers = ctx.providers if Tier.RETRY in ladder else ctx.providers[:1]
        result = await self.providers.call(providers, body)
        self.stats["turns"] += 1
        self.stats["answered" if result.ok else "failed"] += 1
        for attempt in result.attempts:
            self.stats[f"{attempt.role}.{attempt.outcome}"] += 1
        if not result.ok:
            await self._ai_failed(turn, result)
            return
        if result.accepted or result.reply is None:  # an async AI posts through the API later
            if turn.signals:
                await self.call(act.record, ref=turn.ref, trace=act.Trace([s.event_data() for s in turn.signals]))
            return
        await self._answered(turn, result.reply, result.latency_s)

    async def _ai_failed(self, turn: Turn, result: CallResult) -> None:
        last = result.attempts[-1] if result.attempts else None
        kind = last.outcome if last else "connect_error"
        status = last.status if last else None
        detail = _ERROR_DETAIL.get(kind) or f"AI webhook answered {status}"
        turn.signals.append(
            ai_error(
                kind,
                role=last.role if last else "primary",
                attempts=len(result.attempts),
                status=status,
                latency_s=sum(a.latency_s for a in result.attempts),
                detail=detail,
            )
        )
        asked = deciding([s for s in turn.signals if s.reason in ASKS_FOR_PERSON])
        reason = asked.reason if asked is not None and asked.reason else "system_error"
        await self._descend(turn, reason, tiers_after(turn.policy, reason, Tier.RETRY), detail=detail)

    async def _answered(self, turn: Turn, reply: TurnReply, latency_s: float) -> None:
        policy = turn.policy
        turn.intent, turn.confidence = reply.recognised_intent, reply.confidence
        turn.signals += check_answer(
            policy,
            confidence=reply.confidence,
            intent=turn.intent,
            latency_s=latency_s,
            missing_data=reply.missing_data,
        )
        blocked = False
        if reply.reply:
            output = check_ai_text(policy, reply.reply)
            blocked = any(s.blocks for s in output)
            turn.signals += output
        if reply.escalate is not None:
            bundle = reply.escalate.model_dump(mode="json", exclude_none=True)
            bundle.setdefault("reason", {}).setdefault("confidence", reply.confidence)
            bundle["metadata"] = {**bundle.get("metadata", {}), "signals": [s.event_data() for s in turn.signals]}
            turn.ai_bundle = bundle
            turn.first_words = "" if blocked else (reply.reply or "")
            reason = bundle["reason"]["code"]
            await self._descend(turn, reason, tiers_after(policy, reason, Tier.DETERMINISTIC))
            return
        decider = deciding(turn.signals)
        if decider is None or decider.reason is None:
            trace = act.Trace([s.event_data() for s in turn.signals])
            if reply.reply:
                await self.call(act.reply, ref=turn.ref, text=reply.reply, trace=trace)
            elif turn.signals:
                await self.call(act.record, ref=turn.ref, trace=trace)
            return
        turn.draft = None if blocked else reply.reply
        await self._descend(turn, decider.reason, tiers_after(policy, decider.reason, None), decider=decider)

    async def _in_flow(self, turn: Turn) -> None:
        state = turn.ctx.state
        assert state is not None
        asked = deciding([s for s in turn.signals if s.reason in ASKS_FOR_PERSON])
        flow = next((f for f in turn.policy.flows if f.name == state.name), None)
        turn.collected = dict(state.collected)
        if asked is not None and asked.reason is not None:
            await self._descend(turn, asked.reason, tiers_after(turn.policy, asked.reason, Tier.DETERMINISTIC))
            return
        if flow is None:  # the policy changed under it: the flow's reason takes the rest of the ladder
            await self.call(act.end_flow, conversation_id=turn.ctx.conversation_id)
            reason = state.reason_code
            await self._descend(turn, reason, tiers_after(turn.policy, reason, Tier.DETERMINISTIC))
            return
        step = flows.answer(flow, step=state.step, attempts=state.attempts, collected=turn.collected, text=turn.text)
        trace = act.Trace([s.event_data() for s in turn.signals])
        await self.call(act.continue_flow, ref=turn.ref, turn=step, trace=trace)
        if step.gave_up:
            turn.signals = []  # already recorded with the flow's last step
            turn.intent = state.context.get("intent")
            reason = state.reason_code
            detail = f"The {flow.name} flow could not collect {flow.steps[step.step].field}"
            await self._descend(turn, reason, tiers_after(turn.policy, reason, Tier.DETERMINISTIC), detail=detail)

    async def _callback(self, turn: Turn) -> None:
        state = turn.ctx.state
        if state is None or state.kind != act.CALLBACK:
            return
        policy, now = turn.policy, utcnow()
        default_at = _parse(state.context.get("default_at")) or now + timedelta(seconds=policy.deferral.requeue_after_s)
        step = callbacks.answer(
            policy.deferral,
            policy.hours,
            step=state.step,
            attempts=state.attempts,
            contact=state.collected.get("contact"),
            text=turn.text,
            now=now,
            default_at=default_at,
        )
        await self.call(act.continue_callback, ref=turn.ref, turn=step)

    async def _descend(
        self,
        turn: Turn,
        reason: str,
        tiers: Sequence[Tier],
        *,
        decider: Signal | None = None,
        detail: str | None = None,
    ) -> None:
        policy = turn.policy
        rules = policy.reason(reason)
        decider = decider or deciding(turn.signals)
        priority = (decider.priority if decider else None) or rules.priority
        skills = list((decider.skills if decider else ()) or rules.skills)
        detail = detail or _detail_of(reason, decider)
        cause: str | None = None
        for position, tier in enumerate(tiers):
            if tier == Tier.DETERMINISTIC:
                flow = flow_for(policy, intent=turn.intent, text=turn.text)
                if flow is None or turn.collected is not None:  # a flow that gave up is not started again
                    continue
                await self._start_flow(turn, reason, flow.name, rules.messages.get(Tier.DETERMINISTIC, ""))
                return
            if tier == Tier.HUMAN:
                if Tier.DEFERRAL in tiers[position + 1 :]:
                    cause = await self._deferral_cause(policy, skills)
                    if cause is not None:
                        continue
                await self._to_human(turn, reason, priority, skills, detail, rules.messages.get(Tier.HUMAN, ""))
                return
            if tier == Tier.DEFERRAL:
                await self._defer(turn, reason, priority, skills, detail, cause or "policy")
                return
        # Nothing on the ladder could take it: a person, whatever the policy forgot.
        await self._to_human(
            turn, reason, priority, skills, detail, policy.reason("other").messages.get(Tier.HUMAN, "")
        )

    async def _start_flow(self, turn: Turn, reason: str, name: str, intro: str) -> None:
        flow = next(f for f in turn.policy.flows if f.name == name)
        first = flows.begin(flow)
        tier = {"tier": Tier.DETERMINISTIC.value, "reason": reason, "flow": name, "policy_version": turn.policy.version}
        context = {"intent": turn.intent, "draft": turn.draft, "confidence": turn.confidence}
        await self.call(
            act.start_flow,
            ref=turn.ref,
            flow=name,
            turn=first,
            intro=intro,
            reason=reason,
            context=context,
            policy_version=turn.policy.version,
            trace=act.Trace([s.event_data() for s in turn.signals], tier),
        )

    def _bundle(self, turn: Turn, reason: str, priority: str, skills: list[str], detail: str) -> dict[str, Any]:
        if turn.ai_bundle is not None:
            return turn.ai_bundle
        return desk_bundle(
            reason=reason,
            detail=detail,
            priority=priority,
            skills=skills,
            signals=turn.signals,
            last_text=redact(turn.text, turn.policy),
            intent=turn.intent,
            confidence=turn.confidence,
            draft=turn.draft,
            collected=turn.collected,
        )

    async def _to_human(
        self, turn: Turn, reason: str, priority: str, skills: list[str], detail: str, message: str
    ) -> None:
        policy = turn.policy
        tier = {"tier": Tier.HUMAN.value, "reason": reason, "policy_version": policy.version}
        say = " ".join(part for part in (turn.first_words, message) if part)
        await self.call(
            act.hand_to_human,
            ref=turn.ref,
            bundle=self._bundle(turn, reason, priority, skills, detail),
            say=say,
            sla_s=policy.reason(reason).sla_s,
            policy_version=policy.version,
            trace=act.Trace([s.event_data() for s in turn.signals], tier),
        )

    async def _deferral_cause(self, policy: Policy, skills: Sequence[str]) -> str | None:
        rules = policy.deferral
        open_now = is_open(policy.hours, utcnow())
        if rules.when_closed and not open_now:
            return "closed"  # no need to read the queue
        if not (rules.when_nobody_online or rules.max_queue_length or rules.max_wait_s):
            return None
        outlook = await self.outlook(skills)
        floor = Floor(
            open_now=open_now,
            eligible_online=outlook.eligible_online,
            queue_length=outlook.queue_length,
            estimated_wait_s=estimated_wait_s(outlook.queue_length + 1, outlook.claim_rate),
        )
        return deferral_cause(policy, floor)

    async def _defer(self, turn: Turn, reason: str, priority: str, skills: list[str], detail: str, cause: str) -> None:
        policy, now = turn.policy, utcnow()
        opening = next_opening(policy.hours, now)
        if cause == "closed" and opening is not None:
            until = opening
        else:
            until = now + timedelta(seconds=policy.deferral.requeue_after_s)
        explain = _CAUSE_TEXT.get(cause, "").format(next_open=describe(until, policy.hours))
        opening_words = " ".join(
            p for p in (turn.first_words, policy.reason(reason).messages.get(Tier.DEFERRAL, ""), explain) if p
        )
        offer = "We can get back to you instead. " + policy.deferral.ask_contact
        tier = {"tier": Tier.DEFERRAL.value, "reason": reason, "cause": cause, "policy_version": policy.version}
        await self.call(
            act.defer,
            ref=turn.ref,
            bundle=self._bundle(turn, reason, priority, skills, detail),
            cause=cause,
            until=until,
            say=[opening_words, offer],
            sla_s=policy.reason(reason).sla_s,
            policy_version=policy.version,
            trace=act.Trace([s.event_data() for s in turn.signals], tier),
        )


def with_timeout(ai: AIPolicy, timeout_s: float | None) -> AIPolicy:
    """DESK_TURN_TIMEOUT_S, when set, overrides every provider's per-attempt time limit."""
    if timeout_s is None:
        return ai
    return replace(
        ai,
        primary=replace(ai.primary, timeout_s=timeout_s),
        secondary=replace(ai.secondary, timeout_s=timeout_s),
    )


def _detail_of(reason: str, decider: Signal | None) -> str:
    if decider is None:
        return f"Routed by the desk: {reason}"
    values = decider.values
    if decider.kind == "low_confidence":
        return f"AI confidence {values.get('confidence')} under the {values.get('threshold')} threshold"
    if decider.kind == "guardrail":
        return f"Guardrail {values.get('rule')} ({values.get('category')}) on the {values.get('where')}'s text"
    if decider.kind == "frustration":
        kind = values.get("kind")
        return "The customer asked for a person" if kind == "asks_human" else f"Customer frustration ({kind})"
    if decider.kind == "missing_data":
        return "The AI lacks " + ", ".join(str(f) for f in values.get("fields", []))
    return f"Routed by the desk: {reason}"


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
