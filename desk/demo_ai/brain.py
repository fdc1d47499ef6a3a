"""The demo AI's rule-based brain: pure functions, no I/O.

`respond` scores the customer's message against the known intents in `_lexicon.py`. Evidence (cue phrases,
keywords, frustration signals) is combined as a noisy-OR, so each extra cue raises the score with
diminishing returns. The answer's confidence is the best answerable intent's score minus half the best
competing intent's score: a message that matches two things equally well is ambiguous. The AI escalates
when the customer asks for a person, when frustration crosses `FRUSTRATION_THRESHOLD`, or when confidence
is under `CONFIDENCE_THRESHOLD`, in that order of precedence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from desk.demo_ai import _lexicon as lex

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "FRUSTRATION_THRESHOLD",
    "Action",
    "Classification",
    "Escalation",
    "Line",
    "Reason",
    "Reply",
    "respond",
    "resume_text",
]

CONFIDENCE_THRESHOLD = 0.5
FRUSTRATION_THRESHOLD = 0.5
NEGATIVE_THRESHOLD = 0.3
URGENT_THRESHOLD = 0.85
MAX_CONFIDENCE = 0.95
_QUOTE_CHARS = 140

Role = Literal["customer", "ai", "agent", "system"]
ReasonCode = Literal["low_confidence", "user_request", "user_frustration"]
Priority = Literal["low", "normal", "high", "urgent"]
Sentiment = Literal["negative", "neutral", "positive"]


@dataclass(frozen=True)
class Line:
    role: Role
    text: str


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    detail: str
    confidence: float


@dataclass(frozen=True)
class Classification:
    intent: str
    sentiment: Sentiment
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    kind: str
    title: str
    body: str
    confidence: float


@dataclass(frozen=True)
class Escalation:
    reason: Reason
    priority: Priority
    skills: tuple[str, ...]
    summary: str
    classification: Classification
    recommended_actions: tuple[Action, ...]

    def bundle(self) -> dict[str, Any]:
        """The context-bundle fields of CONTRACT.md section 4 (no transcript: Desk holds the conversation)."""
        return {
            "reason": {
                "code": self.reason.code,
                "detail": self.reason.detail,
                "confidence": self.reason.confidence,
            },
            "priority": self.priority,
            "skills": list(self.skills),
            "summary": self.summary,
            "classification": {
                "intent": self.classification.intent,
                "sentiment": self.classification.sentiment,
                "topics": list(self.classification.topics),
            },
            "recommended_actions": [
                {"kind": a.kind, "title": a.title, "body": a.body, "confidence": a.confidence}
                for a in self.recommended_actions
            ],
        }


@dataclass(frozen=True)
class Reply:
    text: str
    confidence: float
    escalation: Escalation | None = None


@dataclass(frozen=True)
class _Match:
    intent: lex.Intent
    score: float


@dataclass(frozen=True)
class _Mood:
    score: float
    signals: tuple[str, ...]


def respond(text: str, history: Sequence[Line] = ()) -> Reply:
    """The AI's next message for `text`, given the conversation before it (oldest first)."""
    matches = _matches(text)
    confidence, best = _confidence(matches)
    answer = best.intent.answer if best else None
    mood = _mood(text, history)
    if _asks_for_person(text):
        code: ReasonCode = "user_request"
        detail = "The customer asked to speak to a person."
    elif mood.score >= FRUSTRATION_THRESHOLD:
        code = "user_frustration"
        detail = f"Frustration signals: {', '.join(mood.signals)}."
    elif confidence < CONFIDENCE_THRESHOLD or answer is None:
        code = "low_confidence"
        detail = _low_confidence_detail(matches, confidence)
    else:
        return Reply(text=answer, confidence=confidence)
    escalation = _escalation(code, detail, confidence, text, history, matches, mood)
    return Reply(text=_HANDOFF_TEXT[code], confidence=confidence, escalation=escalation)


def resume_text(note_for_ai: str | None, outcome: Mapping[str, Any]) -> str:
    """The AI's first message after a human hands control back, built from the outcome and the note."""
    parts = ["Thanks for your patience."]
    resolution = _sentence(outcome.get("resolution"))
    if resolution:
        first = resolution.split()[0]
        if _is_past_participle(first):
            if not first.isupper():
                resolution = resolution[0].lower() + resolution[1:]
            parts.append(f"I see my colleague has {resolution}.")
        else:
            parts.append(f"I see my colleague has taken care of this: {resolution}.")
    else:
        parts.append("My colleague has handed the conversation back to me.")
    note = _sentence(note_for_ai)
    if note:
        parts.append(f"From their notes: {note}.")
    parts.append("Is there anything else I can help you with?")
    return " ".join(parts)


_HANDOFF_TEXT: dict[ReasonCode, str] = {
    "user_request": ("Of course. Let me get a colleague for you; someone from our team will join this chat shortly."),
    "user_frustration": (
        "I'm sorry this has been frustrating. Let me get a colleague who can sort this out; "
        "they'll join this chat shortly."
    ),
    "low_confidence": (
        "I'm not sure I can answer that well, so let me get a colleague who can. They'll join this chat shortly."
    ),
}

_REASON_PLAYS: dict[ReasonCode, tuple[lex.Play, float]] = {
    "user_frustration": (
        lex.Play(
            "reply",
            "Apologise and take ownership",
            "I'm sorry about the trouble, and thank you for bearing with us. I'm picking this up personally "
            "now. Could you confirm your order number so I can sort it out?",
        ),
        0.75,
    ),
    "user_request": (
        lex.Play(
            "reply",
            "Introduce yourself",
            "Hi, I'm from the support team and I've read the conversation so far. How can I help?",
        ),
        0.7,
    ),
    "low_confidence": (
        lex.Play(
            "reply",
            "Ask for details",
            "Thanks for waiting! Could you tell me a bit more about what you need, and your order number "
            "if it's about an order?",
        ),
        0.6,
    ),
}

_WORD = re.compile(r"[a-z0-9']+")
_PAST_IRREGULAR = frozenset(
    {"sent", "made", "set", "given", "done", "found", "put", "paid", "taken", "shown", "told", "sold", "won"}
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _has_phrase(words: Sequence[str], phrase: str) -> bool:
    return f" {phrase} " in f" {' '.join(words)} "


def _has_keyword(words: Iterable[str], keyword: str) -> bool:
    return any(w == keyword or w == keyword + "s" for w in words)


def _noisy_or(weights: Iterable[float]) -> float:
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return 1.0 - miss


def _matches(text: str) -> list[_Match]:
    """Intents with any evidence in `text`, best first; small talk only when nothing else matched."""
    words = _words(text)
    found: list[_Match] = []
    for intent in lex.INTENTS:
        weights = [lex.PHRASE_WEIGHT for p in intent.phrases if _has_phrase(words, p)]
        weights += [lex.KEYWORD_WEIGHT for k in intent.keywords if _has_keyword(words, k)]
        if weights:
            found.append(_Match(intent, _noisy_or(weights)))
    topical = [m for m in found if not m.intent.smalltalk]
    return sorted(topical or found, key=lambda m: m.score, reverse=True)


def _confidence(matches: Sequence[_Match]) -> tuple[float, _Match | None]:
    if not matches:
        return 0.0, None
    best = matches[0]
    answerable = next((m for m in matches if m.intent.answer is not None), None)
    if answerable is None:
        return 0.0, best
    rival = max((m.score for m in matches if m is not answerable), default=0.0)
    confidence = max(0.0, min(MAX_CONFIDENCE, answerable.score - rival / 2))
    return round(confidence, 2), answerable


def _asks_for_person(text: str) -> bool:
    words = _words(text)
    if any(_has_phrase(words, p) for p in lex.HUMAN_PHRASES):
        return True
    if "human" in words or "representative" in words or (len(words) == 1 and words[0] in lex.HUMAN_NOUNS):
        return True
    return bool(lex.HUMAN_NOUNS.intersection(words)) and bool(lex.REQUEST_VERBS.intersection(words))


def _mood(text: str, history: Sequence[Line]) -> _Mood:
    words = _words(text)
    signals: list[tuple[str, float]] = []
    angry = sum(_has_phrase(words, p) for p in lex.ANGRY_PHRASES)
    signals += [("strong language", lex.ANGRY_WEIGHT)] * angry
    if "!!" in text or "?!" in text:
        signals.append(("repeated exclamation marks", lex.EXCLAIM_WEIGHT))
    shouted = [w for w in re.findall(r"[A-Za-z]+", text) if len(w) >= 2 and w.isupper()]
    if any(len(w) >= 4 for w in shouted) or len(shouted) >= 2:
        signals.append(("shouting", lex.SHOUT_WEIGHT))
    repeats = _repeats(words, history) + any(_has_phrase(words, p) for p in lex.REPEAT_PHRASES)
    signals += [("repeating themselves", lex.REPEAT_WEIGHT)] * repeats
    names = tuple(dict.fromkeys(s for s, _ in signals))
    return _Mood(round(_noisy_or(w for _, w in signals), 2), names)


def _repeats(words: Sequence[str], history: Sequence[Line]) -> int:
    """How many earlier customer messages this one (nearly) repeats: each means an answer did not help."""
    mine = set(words)
    if len(mine) < 3:
        return 0
    count = 0
    for line in history:
        theirs = set(_words(line.text)) if line.role == "customer" else set()
        if theirs and len(mine & theirs) / len(mine | theirs) >= 0.8:
            count += 1
    return count


def _low_confidence_detail(matches: Sequence[_Match], confidence: float) -> str:
    if not matches:
        return "No known answer matched the customer's message."
    best = matches[0].intent
    if best.answer is None:
        return f"Recognised {best.label}, which a person has to handle."
    return (
        f"Best match was {best.label} at confidence {confidence:.2f}, under the {CONFIDENCE_THRESHOLD:.2f} threshold."
    )


def _escalation(
    code: ReasonCode,
    detail: str,
    confidence: float,
    text: str,
    history: Sequence[Line],
    matches: Sequence[_Match],
    mood: _Mood,
) -> Escalation:
    focus = _focus(matches, history)
    sentiment: Sentiment = "negative" if mood.score >= NEGATIVE_THRESHOLD else "neutral"
    skills = sorted({s for m in matches for s in m.intent.skills} | set(focus.skills if focus else ()))
    if mood.score >= URGENT_THRESHOLD:
        priority: Priority = "urgent"
    elif sentiment == "negative":
        priority = "high"
    else:
        priority = "normal"
    intent = focus.name if focus else _FALLBACK_INTENT[code]
    classification = Classification(intent, sentiment, _topics(text, history))
    return Escalation(
        reason=Reason(code, detail, confidence),
        priority=priority,
        skills=tuple(skills),
        summary=_summary(text, history, focus, detail, mood),
        classification=classification,
        recommended_actions=_actions("user_frustration" if sentiment == "negative" else code, focus, matches),
    )


_FALLBACK_INTENT: dict[ReasonCode, str] = {
    "user_request": "human_request",
    "user_frustration": "complaint",
    "low_confidence": "unknown",
}


def _focus(matches: Sequence[_Match], history: Sequence[Line]) -> lex.Intent | None:
    """What the customer is on about: this message's best topic, else the latest earlier one."""
    if matches and not matches[0].intent.smalltalk:
        return matches[0].intent
    for line in reversed(history):
        if line.role == "customer":
            earlier = [m for m in _matches(line.text) if not m.intent.smalltalk]
            if earlier:
                return earlier[0].intent
    return None


def _topics(text: str, history: Sequence[Line]) -> tuple[str, ...]:
    topics: list[str] = []
    for line in [*history, Line("customer", text)]:
        if line.role != "customer":
            continue
        for match in _matches(line.text):
            if not match.intent.smalltalk and match.intent.topic not in topics:
                topics.append(match.intent.topic)
    return tuple(topics)


def _actions(code: ReasonCode, focus: lex.Intent | None, matches: Sequence[_Match]) -> tuple[Action, ...]:
    play, weight = _REASON_PLAYS[code]
    actions = [Action(play.kind, play.title, play.body, weight)]
    strength = next((m.score for m in matches if focus is not None and m.intent is focus), 0.5)
    plays = focus.plays if focus and focus.plays else lex.DEFAULT_PLAYS
    for i, extra in enumerate(plays[:2]):
        base = 0.4 + 0.4 * strength if focus else 0.4
        actions.append(Action(extra.kind, extra.title, extra.body, round(base - 0.15 * i, 2)))
    return tuple(actions)


def _summary(
    text: str,
    history: Sequence[Line],
    focus: lex.Intent | None,
    detail: str,
    mood: _Mood,
) -> str:
    said = [line.text for line in history if line.role == "customer"] + [text]
    about = f"about {focus.label}" if focus else "with a request the AI did not recognise"
    parts = [f"The customer wrote {len(said)} message{'s' if len(said) != 1 else ''} {about}."]
    if len(said) > 1:
        parts.append(f"They first wrote {_quote(said[0])} and most recently {_quote(said[-1])}.")
    else:
        parts.append(f"They wrote {_quote(said[0])}.")
    answered = [line for line in history if line.role == "ai"]
    if answered:
        parts.append(f"The AI had replied {len(answered)} time{'s' if len(answered) != 1 else ''} before.")
    if any(line.role == "agent" for line in history):
        parts.append("A colleague has already helped in this conversation.")
    parts.append(f"Reason: {detail.rstrip('.')}.")
    if mood.score >= NEGATIVE_THRESHOLD:
        parts.append(f"Sentiment: negative ({', '.join(mood.signals)}).")
    else:
        parts.append("Sentiment: neutral.")
    return " ".join(parts)


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _QUOTE_CHARS:
        flat = flat[: _QUOTE_CHARS - 1].rstrip() + "\u2026"
    return f"\u201c{flat}\u201d"


def _sentence(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(value.split()).rstrip(".!")


def _is_past_participle(word: str) -> bool:
    lowered = word.lower()
    return lowered.endswith("ed") or lowered in _PAST_IRREGULAR
