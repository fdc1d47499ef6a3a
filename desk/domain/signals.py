"""Detection signals (CONTRACT.md section 8): what a customer's message, the AI's answer and the AI call say about
whether the conversation should leave the AI, and which signal decides the route. Pure: no I/O.

This runs on every AI turn inside the fallback path's budget (2 ms p99), so a policy's rules are compiled once into
regular expressions and kept in a small cache keyed by `Policy.version` (a `Policy` holds dicts and cannot be a
key itself).

How text is matched:

- Keywords and phrases match case-insensitively as whole words: "lawyer" does not match "lawyers", nor "operator"
  "cooperator". Keywords are words, not stems; a rule that wants inflections lists them or uses a pattern
  (`lawyers?`). Whitespace inside a phrase matches any run of whitespace. The edges are "no word character next
  to it" rather than `\\b`, so a keyword that starts or ends with a non-word character ("c++", "#refund") still
  has edges that can match.
- Invisible characters that can disguise text (`desk.domain.text.DISGUISES`) are removed first, so a zero-width
  space inside a keyword or a card number does not hide it.
- A signal's values never hold the customer's text: a match may be a card number.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from desk.domain.policy import Guardrail, GuardrailAction, Policy
from desk.domain.routing import PRIORITY_RANK
from desk.domain.text import DISGUISES, undisguised

AI_ERRORS = ("timeout", "connect_error", "http_error", "malformed", "breaker_open", "busy")
REDACTED = "[redacted]"
REPEAT_WINDOW = 10  # earlier customer messages compared with a new one
REPEAT_MIN_WORDS = 3  # distinct words a message needs before it can count as a repeat
DETAIL_MAX = 200  # characters of an AI error's detail kept in the signal
CACHE_SIZE = 8  # compiled policies kept; a desk runs one policy, plus the few it reloaded from

_PRIORITY = {str(priority): rank for priority, rank in PRIORITY_RANK.items()}
_DISGUISED = re.compile("[" + "".join(re.escape(chr(code)) for code in DISGUISES) + "]")
_PUNCTUATION = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class Signal:
    kind: str  # "guardrail" | "frustration" | "low_confidence" | "latency" | "ai_error" | "missing_data"
    values: dict[str, Any]  # JSON-able; the data of a `signal.detected` event, so: no customer text
    reason: str | None  # the reason code it routes to; None: recorded only
    priority: str | None = None  # a guardrail's priority, overriding the reason's
    skills: tuple[str, ...] = ()
    blocks: bool = False  # withholds the text it was found in (a "block" guardrail)

    def event_data(self) -> dict[str, Any]:
        """`{"kind": ..., **values, "reason": ...}`. A value named "kind" (frustration's "asks_human", "negative",
        "repeat") would hide the signal's kind, so the event carries it under the signal's kind instead:
        `{"kind": "frustration", "frustration": "asks_human", ...}`."""
        data: dict[str, Any] = {"kind": self.kind}
        for key, value in self.values.items():
            data[self.kind if key in ("kind", "reason") else key] = value
        data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class _Rule:
    guardrail: Guardrail
    keywords: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]

    def matched(self, text: str) -> str | None:
        if self.keywords is not None and self.keywords.search(text):
            return "keyword"
        if any(pattern.search(text) for pattern in self.patterns):
            return "pattern"
        return None


@dataclass(frozen=True)
class _Compiled:
    customer_rules: tuple[_Rule, ...]
    ai_rules: tuple[_Rule, ...]
    human: re.Pattern[str] | None  # one named group per phrase: `lastgroup` says which
    human_phrases: dict[str, str]  # group name → the policy's phrase
    negative: re.Pattern[str] | None
    redactions: tuple[re.Pattern[str], ...]


_CACHE: dict[str, tuple[Policy, _Compiled]] = {}
_CACHE_LOCK = threading.Lock()  # only taken to add a policy; lookups are a plain dict read


def _phrase(phrase: str) -> str:
    return r"\s+".join(re.escape(word) for word in phrase.split())


def _words(phrases: Iterable[str]) -> list[str]:
    """The phrases without blanks and case duplicates, longest first (so the longest of two that overlap is named)."""
    unique = {" ".join(phrase.split()).casefold(): phrase for phrase in phrases if phrase.strip()}
    return sorted(unique.values(), key=len, reverse=True)


def _whole_words(phrases: Iterable[str], *, named: str | None = None) -> re.Pattern[str] | None:
    words = _words(phrases)
    if not words:
        return None
    if named is None:
        body = "|".join(_phrase(word) for word in words)
    else:
        body = "|".join(f"(?P<{named}{index}>{_phrase(word)})" for index, word in enumerate(words))
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def _rule(guardrail: Guardrail) -> _Rule:
    patterns = tuple(re.compile(pattern, re.IGNORECASE) for pattern in guardrail.patterns)
    return _Rule(guardrail, _whole_words(guardrail.keywords), patterns)


def _compile(policy: Policy) -> _Compiled:
    rules = [_rule(guardrail) for guardrail in policy.guardrails]
    frustration = policy.detect.frustration
    human_phrases = _words(frustration.human_phrases)
    return _Compiled(
        customer_rules=tuple(rule for rule in rules if "customer" in rule.guardrail.applies_to),
        ai_rules=tuple(rule for rule in rules if "ai" in rule.guardrail.applies_to),
        human=_whole_words(human_phrases, named="h"),
        human_phrases={f"h{index}": phrase for index, phrase in enumerate(human_phrases)},
        negative=_whole_words(frustration.negative_words, named="n"),
        redactions=tuple(
            pattern for rule in rules if rule.guardrail.action == GuardrailAction.BLOCK for pattern in rule.patterns
        ),
    )


def _compiled(policy: Policy) -> _Compiled:
    cached = _CACHE.get(policy.version)
    # The version names the file's bytes, but a policy built in code may reuse one: compare what was compiled.
    if cached is not None and (
        cached[0] is policy
        or (cached[0].guardrails == policy.guardrails and cached[0].detect.frustration == policy.detect.frustration)
    ):
        return cached[1]
    compiled = _compile(policy)
    with _CACHE_LOCK:
        _CACHE.pop(policy.version, None)
        _CACHE[policy.version] = (policy, compiled)
        while len(_CACHE) > CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
    return compiled


def _visible(text: str) -> str:
    return undisguised(text) if _DISGUISED.search(text) else text


def _guardrails(rules: Sequence[_Rule], text: str, where: str) -> list[Signal]:
    found = []
    for rule in rules:
        matched = rule.matched(text)
        if matched is None:
            continue
        guardrail = rule.guardrail
        values = {
            "rule": guardrail.name,
            "category": guardrail.category,
            "where": where,
            "action": str(guardrail.action),
            "matched": matched,
        }
        reason = None if guardrail.action == GuardrailAction.FLAG else "policy_violation"
        blocks = guardrail.action == GuardrailAction.BLOCK
        found.append(Signal("guardrail", values, reason, guardrail.priority, guardrail.skills, blocks))
    return found


def _normalised_words(text: str) -> frozenset[str]:
    return frozenset(_PUNCTUATION.sub("", text.casefold()).split())


def _jaccard(words: frozenset[str], others: frozenset[str]) -> float:
    if len(words) < REPEAT_MIN_WORDS or len(others) < REPEAT_MIN_WORDS:
        return 0.0
    return len(words & others) / len(words | others)


def similarity(text: str, other: str) -> float:
    """How alike two customer messages are, 0-1: the Jaccard overlap of their word sets after case folding and
    removing punctuation. A message of fewer than `REPEAT_MIN_WORDS` distinct words is alike nothing (0.0), even
    itself: short answers ("yes", "ok thanks") repeat by nature, not out of frustration."""
    return _jaccard(_normalised_words(text), _normalised_words(other))


def _repeat(policy: Policy, text: str, earlier: Sequence[str]) -> Signal | None:
    rules = policy.detect.frustration
    words = _normalised_words(text)
    if len(words) < REPEAT_MIN_WORDS:
        return None
    alike = [_jaccard(words, _normalised_words(before)) for before in earlier[-REPEAT_WINDOW:]]
    repeats = [score for score in alike if score > 0.0 and score >= rules.repeat_similarity]
    if not repeats or len(repeats) < rules.repeats:
        return None
    values = {"kind": "repeat", "similarity": round(max(repeats), 3), "repeats": len(repeats)}
    return Signal("frustration", values, "user_frustration")


def _frustration(policy: Policy, compiled: _Compiled, text: str, earlier: Sequence[str]) -> list[Signal]:
    found = []
    if compiled.human is not None and (asked := compiled.human.search(text)) is not None:
        phrase = compiled.human_phrases[str(asked.lastgroup)]
        found.append(Signal("frustration", {"kind": "asks_human", "phrase": phrase}, "user_request"))
    if compiled.negative is not None:
        threshold = policy.detect.frustration.negative_threshold
        hits = {match.lastgroup for match in compiled.negative.finditer(text)}
        if hits and len(hits) >= threshold:
            values = {"kind": "negative", "words": len(hits), "threshold": threshold}
            found.append(Signal("frustration", values, "user_frustration"))
    repeat = _repeat(policy, text, earlier)
    if repeat is not None:
        found.append(repeat)
    return found


def check_customer(policy: Policy, text: str, earlier: Sequence[str]) -> list[Signal]:
    """The signals in a customer's message: guardrails that apply to "customer", then frustration. `earlier` are
    the customer's previous messages, most recent last; only the last `REPEAT_WINDOW` are compared with `text`."""
    compiled = _compiled(policy)
    visible = _visible(text)
    earlier_visible = [_visible(before) for before in earlier[-REPEAT_WINDOW:]]
    return _guardrails(compiled.customer_rules, visible, "customer") + _frustration(
        policy, compiled, visible, earlier_visible
    )


def check_ai_text(policy: Policy, text: str) -> list[Signal]:
    """The guardrails that apply to "ai" and match the AI's answer."""
    return _guardrails(_compiled(policy).ai_rules, _visible(text), "ai")


def check_answer(
    policy: Policy, *, confidence: float | None, intent: str | None, latency_s: float, missing_data: Sequence[str]
) -> list[Signal]:
    """The signals in an AI answer that arrived. A confidence exactly at the threshold, or a latency exactly at the
    limit, is not a signal; an answer without a confidence is never low on it."""
    found = []
    threshold = policy.detect.threshold_for(intent)
    if confidence is not None and confidence < threshold:
        values = {"confidence": confidence, "threshold": threshold, "intent": intent}
        found.append(Signal("low_confidence", values, "low_confidence"))
    limit_s = policy.ai.latency_limit_s
    if latency_s > limit_s:
        values = {"latency_ms": round(latency_s * 1000), "limit_ms": round(limit_s * 1000)}
        found.append(Signal("latency", values, None))
    fields = list(dict.fromkeys(missing_data))
    if fields:
        found.append(Signal("missing_data", {"fields": fields}, "missing_data"))
    return found


def ai_error(kind: str, *, role: str, attempts: int, status: int | None, latency_s: float, detail: str) -> Signal:
    """An AI call that gave no usable answer. `kind` is one of `AI_ERRORS`; `detail` is cut to `DETAIL_MAX`."""
    if kind not in AI_ERRORS:
        raise ValueError(f"unknown AI error kind {kind!r}; expected one of {', '.join(AI_ERRORS)}")
    values = {
        "error": kind,
        "role": role,
        "attempts": attempts,
        "status": status,
        "latency_ms": round(latency_s * 1000),
        "detail": detail[:DETAIL_MAX],
    }
    return Signal("ai_error", values, "system_error")


def _precedence(signal: Signal) -> tuple[int, int]:
    priority = _PRIORITY.get(signal.priority or "", len(_PRIORITY))
    if signal.kind == "guardrail":
        return (0, priority) if signal.values.get("action") == GuardrailAction.HANDOFF else (1, priority)
    if signal.kind == "ai_error":
        return (2, 0)
    if signal.kind == "frustration":
        return (3, 0) if signal.reason == "user_request" else (4, 0)
    if signal.kind == "missing_data":
        return (5, 0)
    if signal.kind == "low_confidence":
        return (6, 0)
    return (7, 0)


def deciding(signals: Sequence[Signal]) -> Signal | None:
    """The signal that decides the route, or None when none has a reason. Precedence: a handoff guardrail (the
    most urgent first) > a block guardrail > an AI error > the customer asking for a human > other frustration >
    missing data > low confidence. Among equals, the first one."""
    routing = [signal for signal in signals if signal.reason is not None]
    return min(routing, key=_precedence) if routing else None


def redact(text: str, policy: Policy) -> str:
    """`text` with every match of a block guardrail's patterns replaced by `REDACTED`, for a customer's text that is
    kept in a summary or sent to an AI. Invisible characters are removed first, so they cannot split a match."""
    visible = _visible(text)
    for pattern in _compiled(policy).redactions:
        visible = pattern.sub(REDACTED, visible)
    return visible
