"""Reading the fallback policy file (TOML) into `desk.domain.policy` values, with every problem located.

A user's file is layered over the built-in `default_policy.toml`: tables merge key by key, so a key left out keeps
its built-in value, while an array of tables (`[[guardrails]]`, `[[flows]]`) replaces the built-in list whole.
Validation collects every problem before failing, each with the line it comes from and its path as the user would
write it (`flows[0].steps[1].pattern`): tomllib gives no positions, so `policy_lines.Locator` scans the text for them.

`PolicySource` is the running desk's view of the file: it re-reads it when it changes and keeps the policy in
force when the new text is invalid or the file has gone, so a typo never takes the fallback ladder down.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import json
import logging
import os
import re
import string
import tomllib
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from desk.domain.policy import (
    REASON_CODES,
    AIPolicy,
    BreakerPolicy,
    Deferral,
    Detection,
    Flow,
    FlowStep,
    Frustration,
    Guardrail,
    GuardrailAction,
    Hours,
    Policy,
    ProviderPolicy,
    ReasonPolicy,
    Tier,
)
from desk.domain.routing import Priority
from desk.errors import DeskError
from desk.fallback.policy_lines import Locator, Path, field_name

__all__ = ["PolicyError", "PolicySource", "Problem", "builtin_policy_text", "load_policy", "parse_policy"]

log = logging.getLogger(__name__)

BUILTIN_SOURCE = "built-in"
DEFAULT_LABEL = "custom"
VERSION_HASH_CHARS = 8
MAX_RETRIES = 10
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60

Table = dict[str, Any]

_SYNTAX_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)$")
_TIME_RANGE = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_PRIORITIES = tuple(p.value for p in reversed(Priority))
_TIERS = tuple(t.value for t in Tier)
_APPLIES_TO = ("customer", "ai")
_CONFIRM_FIELDS = ("contact", "time")


# --- problems -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based; None when the place is not in the file (a built-in value)
    field: str  # the dotted path as written in the file, e.g. "guardrails[2].patterns[0]", or "(syntax)"
    message: str

    def render(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class PolicyError(DeskError):
    code = "invalid_policy"

    def __init__(self, problems: Sequence[Problem], *, source: str = BUILTIN_SOURCE) -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__(
            "\n".join(problem.render(source) for problem in self.problems),
            fields={problem.field: problem.message for problem in self.problems},
        )


# --- reading values, collecting problems ------------------------------------------------------------------------


# bool before int (a bool is an int), datetime before date: the first match names the value's TOML type.
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    (datetime, "a date-time"),
    (date, "a date"),
)


def _kind(value: object) -> str:
    return next((name for cls, name in _KINDS if isinstance(value, cls)), "a time")


def _bound(low: float, high: float | None, low_open: bool) -> str:
    if high is None:
        return f"greater than {low:g}" if low_open else f"at least {low:g}"
    return f"in ({low:g}, {high:g}]" if low_open else f"between {low:g} and {high:g}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Section:
    """One table of the file, read into the dataclass `defaults` belongs to (an instance, or the class when some
    fields have no default). A key left out takes the default; a wrong value is recorded as a problem and the
    default used instead, so that one pass finds every problem."""

    def __init__(
        self, problems: list[tuple[Path, str]], value: object, path: Path, keys: Sequence[str], defaults: object
    ) -> None:
        self.problems, self.path, self.defaults = problems, path, defaults
        self.data: Table = value if isinstance(value, dict) else {}
        if not isinstance(value, dict):
            self.fail((), f"expected a table, got {_kind(value)}")
        for key in self.data:
            if key not in keys:
                self.fail((key,), f"unknown key; expected one of {', '.join(sorted(keys))}")

    def fail(self, where: Path, message: str) -> None:
        self.problems.append(((*self.path, *where), message))

    def section(self, key: str, keys: Sequence[str], defaults: object) -> _Section:
        return _Section(self.problems, self.data.get(key, {}), (*self.path, key), keys, defaults)

    def tables(self, key: str) -> list[Table]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail((key,), f"expected an array of tables ([[{field_name((*self.path, key))}]]), got {_kind(value)}")
            return []
        return value

    def value(self, key: str, want: str, ok: Callable[[object], bool], required: bool = False) -> Any:
        if key not in self.data:
            if required:
                self.fail((key,), "missing; this key is required")
            return getattr(self.defaults, key, None)
        value = self.data[key]
        if not ok(value):
            self.fail((key,), f"expected {want}, got {_kind(value)}")
            return getattr(self.defaults, key, None)
        return value

    def text(self, key: str, *, required: bool = False) -> Any:
        return self.value(key, "a string", lambda v: isinstance(v, str), required)

    def flag(self, key: str) -> Any:
        return self.value(key, "a boolean (true or false)", lambda v: isinstance(v, bool))

    def number(
        self, key: str, low: float, high: float | None = None, *, low_open: bool = False, integer: bool = False
    ) -> Any:
        want, ok = (
            ("an integer", lambda v: _is_number(v) and isinstance(v, int)) if integer else ("a number", _is_number)
        )
        value = self.value(key, want, ok)
        if value is None:
            return None
        if (value <= low if low_open else value < low) or (high is not None and value > high):
            self.fail((key,), f"must be {_bound(low, high, low_open)}, got {value}")
            return getattr(self.defaults, key, None)
        return value if integer else float(value)

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.value(key, "an array of strings", lambda v: isinstance(v, list)) or ()
        for index, item in enumerate(items):
            if not isinstance(item, str):
                self.fail((key, index), f"expected a string, got {_kind(item)}")
        return tuple(item for item in items if isinstance(item, str))

    def choice(self, key: str, options: Sequence[str], *, required: bool = False) -> Any:
        value = self.text(key, required=required)
        if value is not None and value not in options:
            self.fail((key,), f"expected one of {', '.join(options)}, got {json.dumps(value)}")
            return getattr(self.defaults, key, None)
        return value

    def pattern(self, where: Path, pattern: str) -> None:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            self.fail(where, f"not a valid regular expression: {exc}")

    def placeholders(self, key: str, allowed: Sequence[str], unknown: str) -> None:
        """Every `{name}` in the text at `key` is one of `allowed`; `unknown` says where names come from."""
        text = self.data.get(key)
        if not isinstance(text, str):
            return
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            self.fail((key,), f"{exc} (write {{{{ or }}}} for a literal brace)")
            return
        for name in names:
            if name not in allowed:
                known = ", ".join(f"{{{a}}}" for a in allowed) or "none"
                self.fail((key,), f"placeholder {{{name}}} {unknown} (available: {known})")

    def unique(self, key: str, seen: dict[str, int], what: str) -> None:
        """The value at `key` of this array element is not used by an earlier element."""
        name, index = self.data.get(key), int(self.path[-1])
        if not isinstance(name, str):
            return
        if name in seen:
            self.fail(
                (key,), f"{what} {json.dumps(name)} is already used by {field_name(self.path[:-1])}[{seen[name]}]"
            )
        seen.setdefault(name, index)


def _keys(cls: type) -> tuple[str, ...]:
    """A section's keys are the fields of the dataclass it fills."""
    return tuple(f.name for f in fields(cls))


# --- the sections -------------------------------------------------------------------------------------------------


def _provider(ai: _Section, key: str, defaults: ProviderPolicy) -> ProviderPolicy:
    t = ai.section(key, _keys(ProviderPolicy), defaults)
    return ProviderPolicy(
        timeout_s=t.number("timeout_s", 0, low_open=True),
        retries=t.number("retries", 0, MAX_RETRIES, integer=True),
        max_concurrent=t.number("max_concurrent", 1, integer=True),
    )


def _ai(top: _Section) -> AIPolicy:
    defaults = AIPolicy()
    ai = top.section("ai", _keys(AIPolicy), defaults)
    b = ai.section("breaker", _keys(BreakerPolicy), defaults.breaker)
    policy = AIPolicy(
        primary=_provider(ai, "primary", defaults.primary),
        secondary=_provider(ai, "secondary", defaults.secondary),
        backoff_s=ai.number("backoff_s", 0),
        backoff_max_s=ai.number("backoff_max_s", 0),
        latency_limit_s=ai.number("latency_limit_s", 0, low_open=True),
        breaker=BreakerPolicy(
            window_s=b.number("window_s", 0, low_open=True),
            min_calls=b.number("min_calls", 1, integer=True),
            failure_rate=b.number("failure_rate", 0, 1, low_open=True),
            cooldown_s=b.number("cooldown_s", 0, low_open=True),
            half_open_calls=b.number("half_open_calls", 1, integer=True),
        ),
    )
    if policy.backoff_max_s < policy.backoff_s:
        ai.fail(("backoff_max_s",), f"must be at least backoff_s ({policy.backoff_s:g})")
    return policy


def _detection(top: _Section) -> Detection:
    defaults = Detection()
    detect = top.section("detect", _keys(Detection), defaults)
    intents = detect.data.get("intent_thresholds", {})
    thresholds = detect.section("intent_thresholds", list(intents) if isinstance(intents, dict) else [], None)
    f = detect.section("frustration", _keys(Frustration), defaults.frustration)
    return Detection(
        confidence_threshold=detect.number("confidence_threshold", 0, 1),
        intent_thresholds={intent: thresholds.number(intent, 0, 1) for intent in thresholds.data},
        frustration=Frustration(
            human_phrases=f.strings("human_phrases"),
            negative_words=f.strings("negative_words"),
            negative_threshold=f.number("negative_threshold", 1, integer=True),
            repeat_similarity=f.number("repeat_similarity", 0, 1, low_open=True),
            repeats=f.number("repeats", 1, integer=True),
        ),
    )


def _guardrails(top: _Section) -> tuple[Guardrail, ...]:
    rules, names = [], dict[str, int]()
    for index, item in enumerate(top.tables("guardrails")):
        g = _Section(top.problems, item, ("guardrails", index), _keys(Guardrail), Guardrail)
        g.unique("name", names, "guardrail name")
        applies_to = g.strings("applies_to")
        if g.data.get("applies_to", []) == []:
            g.fail(("applies_to",), 'must name at least one of "customer", "ai"')
        for i, who in enumerate(applies_to):
            if who not in _APPLIES_TO:
                g.fail(("applies_to", i), f'expected "customer" or "ai", got {json.dumps(who)}')
        keywords, patterns = g.strings("keywords"), g.strings("patterns")
        if not keywords and not patterns:
            g.fail((), "a guardrail needs at least one keyword or pattern")
        for i, pattern in enumerate(patterns):
            g.pattern(("patterns", i), pattern)
        name = g.text("name", required=True) or ""
        rules.append(
            Guardrail(
                name=name,
                category=g.text("category") or name,
                applies_to=applies_to,
                keywords=keywords,
                patterns=patterns,
                action=GuardrailAction(g.choice("action", tuple(GuardrailAction), required=True) or "flag"),
                priority=g.choice("priority", _PRIORITIES),
                skills=g.strings("skills"),
            )
        )
    return tuple(rules)


def _tiers(reason: _Section, code: str) -> tuple[Tier, ...]:
    names = reason.strings("tiers")
    if reason.data.get("tiers") == []:
        reason.fail(("tiers",), "must name at least one tier")
    tiers: list[Tier] = []
    for index, name in enumerate(names):
        if name not in _TIERS:
            problem = f"unknown tier {json.dumps(name)}; expected one of {', '.join(_TIERS)}"
        elif Tier(name) in tiers:
            problem = f'tier "{name}" is already in the ladder'
        elif name == Tier.RETRY and code != "system_error":
            problem = '"retry" is only for system_error: the other reasons come from an answer that arrived'
        elif name == Tier.RETRY and index != 0:
            problem = '"retry" must come first'
        else:
            tiers.append(Tier(name))
            continue
        reason.fail(("tiers", index), problem)
    return tuple(tiers)


def _reasons(top: _Section) -> dict[str, ReasonPolicy]:
    reasons = top.section("reasons", REASON_CODES, None)
    ladders: dict[str, ReasonPolicy] = {}
    for code in REASON_CODES:
        if code not in reasons.data:  # only when `reasons` is not a table: the built-in file has every code
            continue
        r = reasons.section(code, _keys(ReasonPolicy), ReasonPolicy)
        messages = r.section("messages", _TIERS, None)
        ladders[code] = ReasonPolicy(
            tiers=_tiers(r, code),
            priority=r.choice("priority", _PRIORITIES),
            skills=r.strings("skills"),
            sla_s=r.number("sla_s", 1, integer=True),
            messages={Tier(tier): messages.text(tier) or "" for tier in messages.data if tier in _TIERS},
        )
    return ladders


def _steps(flow: _Section) -> tuple[FlowStep, ...]:
    steps: list[FlowStep] = []
    names: dict[str, int] = {}
    for index, item in enumerate(flow.tables("steps")):
        s = _Section(flow.problems, item, (*flow.path, "steps", index), _keys(FlowStep), FlowStep)
        name = s.text("field", required=True)
        if name is not None and not name.isidentifier():
            s.fail(("field",), f"must be an identifier (letters, digits and _), got {json.dumps(name)}")
        s.unique("field", names, "field")
        earlier = [step.field for step in steps]
        s.placeholders("prompt", earlier, "is not collected by an earlier step")
        s.placeholders("retry_prompt", earlier, "is not collected by an earlier step")
        pattern = s.text("pattern")
        if pattern is not None:
            s.pattern(("pattern",), pattern)
        prompt = s.text("prompt", required=True) or ""
        steps.append(FlowStep(field=name or "", prompt=prompt, pattern=pattern, retry_prompt=s.text("retry_prompt")))
    return tuple(steps)


def _flows(top: _Section) -> tuple[Flow, ...]:
    flows, names = [], dict[str, int]()
    for index, item in enumerate(top.tables("flows")):
        f = _Section(top.problems, item, ("flows", index), _keys(Flow), Flow)
        f.unique("name", names, "flow name")
        intents, keywords = f.strings("intents"), f.strings("keywords")
        if not intents and not keywords:
            f.fail((), "a flow needs at least one intent or keyword")
        steps = _steps(f)
        f.placeholders("answer", [step.field for step in steps], "is not a step's field")
        flows.append(
            Flow(
                name=f.text("name", required=True) or "",
                intents=intents,
                keywords=keywords,
                steps=steps,
                answer=f.text("answer", required=True) or "",
                max_attempts=f.number("max_attempts", 1, integer=True),
            )
        )
    return tuple(flows)


def _minutes(hours: str, minutes: str, *, end: bool) -> int | None:
    h, m = int(hours), int(minutes)
    if end and (h, m) == (24, 0):
        return MINUTES_PER_DAY
    return h * 60 + m if h < 24 and m < 60 else None


def _day(hours: _Section, day: str) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int, int]] = []  # start, end, index in the file
    for index, text in enumerate(hours.strings(day)):
        match = _TIME_RANGE.fullmatch(text.strip())
        start = end = None
        if match:
            start = _minutes(match.group(1), match.group(2), end=False)
            end = _minutes(match.group(3), match.group(4), end=True)
        if start is None or end is None:
            hours.fail((day, index), f'expected "HH:MM-HH:MM" (e.g. "09:00-17:30"), got {json.dumps(text)}')
        elif end <= start:
            hours.fail((day, index), f"{text} must end after it starts")
        else:
            spans.append((start, end, index))
    spans.sort()
    latest: tuple[int, int] | None = None  # the end and index of the range that reaches furthest so far
    for start, end, index in spans:
        if latest is not None and start < latest[0]:
            hours.fail((day, index), f"overlaps {day}[{latest[1]}]")
        if latest is None or end > latest[0]:
            latest = (end, index)
    return tuple((start, end) for start, end, _ in spans)


def _holiday(value: object) -> str | None:
    if isinstance(value, date) and not isinstance(value, datetime):  # a TOML date, written without quotes
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value).isoformat()
    return None


def _hours(top: _Section) -> Hours | None:
    if "hours" not in top.data:
        return None
    hours = top.section("hours", ("timezone", *DAYS, "holidays"), Hours)
    timezone = hours.text("timezone", required=True)
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hours.fail(("timezone",), f'unknown time zone {json.dumps(timezone)} (e.g. "Europe/Paris", "UTC")')
    holidays = hours.value("holidays", "an array of dates", lambda v: isinstance(v, list)) or ()
    for index, value in enumerate(holidays):
        if _holiday(value) is None:
            hours.fail(("holidays", index), f'expected a date "YYYY-MM-DD", got {json.dumps(value, default=str)}')
    return Hours(
        timezone=timezone or "UTC",
        weekly=tuple(_day(hours, day) for day in DAYS),
        holidays=frozenset(day for day in map(_holiday, holidays) if day is not None),
    )


def _deferral(top: _Section) -> Deferral:
    d = top.section("deferral", _keys(Deferral), Deferral())
    d.placeholders("confirm", _CONFIRM_FIELDS, "is not one Desk fills in")
    return Deferral(
        when_closed=d.flag("when_closed"),
        when_nobody_online=d.flag("when_nobody_online"),
        max_queue_length=d.number("max_queue_length", 0, integer=True),
        max_wait_s=d.number("max_wait_s", 0),
        requeue_after_s=d.number("requeue_after_s", 0),
        ask_contact=d.text("ask_contact"),
        ask_time=d.text("ask_time"),
        confirm=d.text("confirm"),
    )


# --- the file -----------------------------------------------------------------------------------------------------

_TOP_KEYS = ("version", "ai", "detect", "guardrails", "reasons", "flows", "hours", "deferral")


@functools.cache
def builtin_policy_text() -> str:
    """The built-in policy file, as shipped: what `desk policy show` prints for copying."""
    return importlib.resources.files("desk.fallback").joinpath("default_policy.toml").read_text(encoding="utf-8")


@functools.cache
def _builtin_data() -> Table:
    return tomllib.loads(builtin_policy_text())


def _layer(base: Table, top: Table) -> Table:
    """`top` over `base`: tables merge key by key, anything else (arrays of tables included) replaces."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = _layer(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged


def _syntax_problem(error: tomllib.TOMLDecodeError, text: str) -> Problem:
    message = str(error)
    match = _SYNTAX_POSITION.search(message)
    if match is None:
        return Problem(None, "(syntax)", message)
    line = int(match.group(1)) if match.group(1) else max(1, len(text.splitlines()))
    return Problem(line, "(syntax)", message[: match.start()])


def parse_policy(text: str, *, source: str) -> Policy:
    """The policy a file's text describes, layered over the built-in one; PolicyError lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([_syntax_problem(exc, text)], source=source) from None
    problems: list[tuple[Path, str]] = []
    label = data.get("version", DEFAULT_LABEL)
    if not isinstance(label, str) or not label.strip():
        problems.append((("version",), f"expected a label (a non-empty string), got {_kind(label)}"))
        label = DEFAULT_LABEL
    # Unknown keys are the file's own: every key of the built-in file is known.
    top = _Section(problems, _layer(_builtin_data(), data), (), _TOP_KEYS, None)
    policy = Policy(
        version=f"{label}+{hashlib.sha256(text.encode()).hexdigest()[:VERSION_HASH_CHARS]}",
        ai=_ai(top),
        detect=_detection(top),
        guardrails=_guardrails(top),
        reasons=_reasons(top),
        flows=_flows(top),
        hours=_hours(top),
        deferral=_deferral(top),
        source=source,
    )
    if problems:
        locator = Locator(text)
        located = [Problem(locator.line(path), field_name(path), message) for path, message in problems]
        raise PolicyError(sorted(located, key=lambda p: p.line or 0), source=source)
    return policy


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError([Problem(line, "(syntax)", "the file is not UTF-8 text")], source=source) from None


def load_policy(path: str | None) -> Policy:
    """The policy in the file at `path` (None: the built-in one). OSError when the file cannot be read."""
    if path is None:
        return parse_policy(builtin_policy_text(), source=BUILTIN_SOURCE)
    return parse_policy(_decode(_read(path), path), source=path)


# --- the running desk's policy ------------------------------------------------------------------------------------


class PolicySource:
    """The policy in force, from `path` (None: the built-in one, never reloaded).

    `reload()` costs one stat() while the file is unchanged, so it can be called every couple of seconds. A new
    file that is invalid, or a file that has gone, leaves the policy in force as it was and sets `last_error`.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.last_error: str | None = None
        self._stamp: tuple[int, int] | None = None
        self._seen_digest: str | None = None  # of the bytes read last, valid or not
        self._current_digest: str | None = None
        if path is None:
            self.current = load_policy(None)
            return
        self._stamp, raw = _stamp(path), _read(path)
        self.current = parse_policy(_decode(raw, path), source=path)
        self._seen_digest = self._current_digest = hashlib.sha256(raw).hexdigest()

    def _reject(self, error: str) -> bool:
        if error != self.last_error:  # once per distinct problem, not on every poll
            log.warning("policy file not reloaded, still using %s: %s", self.current.version, error)
        self.last_error = error
        return False

    def reload(self) -> bool:
        """Re-read the file if it changed; True when a new policy took over."""
        if self.path is None:
            return False
        try:
            # Stat before reading: a write landing in between shows up as a new stamp on the next call.
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return False
            raw = _read(self.path)
        except OSError as exc:
            self._stamp = self._seen_digest = None
            return self._reject(f"{self.path}: cannot read the file: {exc.strerror or exc}")
        self._stamp = stamp
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self._seen_digest:
            return False
        self._seen_digest = digest
        if digest == self._current_digest:  # back to the text in force, after a bad edit or a missing file
            self.last_error = None
            return False
        try:
            policy = parse_policy(_decode(raw, self.path), source=self.path)
        except PolicyError as exc:
            return self._reject(str(exc))
        self.current, self._current_digest, self.last_error = policy, digest, None
        log.info("policy file %s loaded: version %s", self.path, policy.version)
        return True


def _stamp(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
