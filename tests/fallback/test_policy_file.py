"""The policy file: the built-in one read back value for value, layering over it, every invalid case located by line
and field, and PolicySource's reloads (a changed valid file takes over, an invalid or missing one does not)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from desk.domain.policy import Flow, FlowStep, Guardrail, GuardrailAction, Hours, Tier
from desk.fallback.policy_file import PolicyError, PolicySource, Problem, builtin_policy_text, load_policy, parse_policy

BUILT_IN = load_policy(None)


def toml(text: str) -> str:
    """The text as written in the test, without the indentation and the first newline: line 1 is the first line."""
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str, source: str = "p.toml") -> tuple[Problem, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source=source)
    return caught.value.problems


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --- the built-in policy --------------------------------------------------------------------------------------


def _attribute(value: Any, key: str) -> Any:
    return value[key] if isinstance(value, dict) else getattr(value, key)


def _same(policy_value: Any, file_value: Any, where: str) -> None:
    if isinstance(file_value, dict):
        if not dataclasses.is_dataclass(policy_value):
            assert set(file_value) == {str(key) for key in policy_value}, where
        for key, item in file_value.items():
            _same(_attribute(policy_value, key), item, f"{where}.{key}")
    elif isinstance(file_value, list):
        assert len(policy_value) == len(file_value), where
        for index, (mine, theirs) in enumerate(zip(policy_value, file_value, strict=True)):
            _same(mine, theirs, f"{where}[{index}]")
    else:
        assert policy_value == file_value, f"{where}: {policy_value!r} != {file_value!r}"
        # An enum member stands for its string; a float field holds an integer written without a decimal point.
        assert isinstance(policy_value, type(file_value)) or type(file_value) is int, where


def test_the_built_in_policy_holds_every_value_of_its_file() -> None:
    raw = tomllib.loads(builtin_policy_text())
    label = raw.pop("version")
    _same(BUILT_IN, raw, "policy")
    assert BUILT_IN.version == f"{label}+{digest(builtin_policy_text())}"
    assert BUILT_IN.source == "built-in"
    assert BUILT_IN.hours is None  # the built-in file has no [hours]: always open
    assert set(BUILT_IN.reasons) == {"low_confidence", "policy_violation", "missing_data", "system_error"} | {
        "user_frustration",
        "user_request",
        "other",
    }
    assert all(isinstance(tier, Tier) for r in BUILT_IN.reasons.values() for tier in (*r.tiers, *r.messages))
    assert all(isinstance(rule.action, GuardrailAction) for rule in BUILT_IN.guardrails)


def test_the_built_in_text_parses_to_the_built_in_policy() -> None:
    assert parse_policy(builtin_policy_text(), source="copy.toml") == dataclasses.replace(BUILT_IN, source="copy.toml")


# --- layering -------------------------------------------------------------------------------------------------


def test_an_empty_file_is_the_built_in_policy_with_its_own_version() -> None:
    policy = parse_policy("", source="empty.toml")
    assert policy.version == f"custom+{digest('')}"
    assert dataclasses.replace(policy, version=BUILT_IN.version, source=BUILT_IN.source) == BUILT_IN


def test_a_key_left_out_keeps_its_built_in_value() -> None:
    text = toml(
        """
        version = "shop-7"
        [ai.primary]
        timeout_s = 2
        [reasons.low_confidence]
        priority = "urgent"
        [reasons.other.messages]
        human = ""
        """
    )
    policy = parse_policy(text, source="mine.toml")
    assert policy.version == f"shop-7+{digest(text)}"
    assert policy.source == "mine.toml"
    assert policy.ai.primary == dataclasses.replace(BUILT_IN.ai.primary, timeout_s=2.0)
    assert isinstance(policy.ai.primary.timeout_s, float)
    assert policy.ai.secondary == BUILT_IN.ai.secondary
    assert policy.ai.breaker == BUILT_IN.ai.breaker
    low = BUILT_IN.reasons["low_confidence"]
    assert policy.reasons["low_confidence"] == dataclasses.replace(low, priority="urgent")
    assert policy.reasons["other"].messages == {**BUILT_IN.reasons["other"].messages, Tier.HUMAN: ""}
    untouched = {code for code in BUILT_IN.reasons if code not in ("low_confidence", "other")}
    assert {code: policy.reasons[code] for code in untouched} == {code: BUILT_IN.reasons[code] for code in untouched}
    assert (policy.detect, policy.guardrails, policy.flows, policy.hours, policy.deferral) == (
        BUILT_IN.detect,
        BUILT_IN.guardrails,
        BUILT_IN.flows,
        BUILT_IN.hours,
        BUILT_IN.deferral,
    )


def test_arrays_of_tables_replace_the_built_in_list() -> None:
    text = toml(
        """
        [[guardrails]]
        name = "profanity"
        applies_to = ["ai"]
        keywords = ["darn"]
        action = "flag"

        [[flows]]
        name = "returns"
        keywords = ["return"]
        answer = "We'll mail a label to {email}."
        max_attempts = 2
        [[flows.steps]]
        field = "email"
        prompt = "Your email?"
        """
    )
    policy = parse_policy(text, source="mine.toml")
    assert policy.guardrails == (
        Guardrail("profanity", "profanity", ("ai",), ("darn",), (), GuardrailAction.FLAG, "high", ()),
    )
    step = FlowStep(field="email", prompt="Your email?")
    assert policy.flows == (Flow("returns", (), ("return",), (step,), "We'll mail a label to {email}.", 2),)


def test_hours_are_read_into_minutes_per_weekday() -> None:
    text = toml(
        """
        [hours]
        timezone = "Europe/Paris"
        monday = ["13:30-18:00", "09:00-12:30"]
        friday = ["12:00-24:00", "00:00-12:00"]
        holidays = ["2026-12-25", 2027-01-01]
        """
    )
    hours = parse_policy(text, source="h.toml").hours
    closed: tuple[tuple[int, int], ...] = ()
    assert hours == Hours(
        timezone="Europe/Paris",
        weekly=(((540, 750), (810, 1080)), closed, closed, closed, ((0, 720), (720, 1440)), closed, closed),
        holidays=frozenset({"2026-12-25", "2027-01-01"}),
    )


def test_values_at_the_edges_of_their_ranges_are_accepted() -> None:
    text = toml(
        """
        [ai]
        backoff_s = 0
        backoff_max_s = 0
        [ai.primary]
        retries = 10
        max_concurrent = 1
        [ai.secondary]
        retries = 0
        [ai.breaker]
        failure_rate = 1
        min_calls = 1
        [detect]
        confidence_threshold = 0
        [detect.intent_thresholds]
        "billing.refund" = 1.0
        [detect.frustration]
        repeat_similarity = 1
        negative_threshold = 1
        [reasons.system_error]
        tiers = ["retry"]
        sla_s = 1
        [deferral]
        max_queue_length = 0
        requeue_after_s = 0
        confirm = "{{Desk}}: {contact}, {time}."
        """
    )
    policy = parse_policy(text, source="edges.toml")
    assert (policy.ai.primary.retries, policy.ai.secondary.retries, policy.ai.breaker.failure_rate) == (10, 0, 1.0)
    assert policy.detect.intent_thresholds == {"refund_request": 0.7, "account_deletion": 0.8, "billing.refund": 1.0}
    assert policy.reasons["system_error"] == dataclasses.replace(
        BUILT_IN.reasons["system_error"], tiers=(Tier.RETRY,), sla_s=1
    )
    assert policy.deferral.confirm == "{{Desk}}: {contact}, {time}."


# --- invalid files: every problem with its line and field -------------------------------------------------------

INVALID = [
    pytest.param("[ai]\nbackoff_s = 0.2\nlatency_limit_s = \n", 3, "(syntax)", "Invalid value", id="syntax"),
    pytest.param("[ai]\nretries = 1\n[ai]\n", 3, "(syntax)", "Cannot declare ('ai',) twice", id="syntax-table-twice"),
    pytest.param("x = [1,\n", 1, "(syntax)", "Invalid", id="syntax-end-of-document"),
    pytest.param(
        '# mine\n\nverison = "a"\n',
        3,
        "verison",
        "unknown key; expected one of ai, deferral, detect, flows",
        id="top-key",
    ),
    pytest.param(
        "[ai.primary]\ntimeout_s = 8\ntimeot_s = 2\n",
        3,
        "ai.primary.timeot_s",
        "unknown key; expected one of max_concurrent, retries, timeout_s",
        id="unknown-key",
    ),
    pytest.param(
        '[ai.primary]\ntimeout_s = "8"\n', 2, "ai.primary.timeout_s", "expected a number, got a string", id="type"
    ),
    pytest.param(
        "[ai.secondary]\nretries = true\n", 2, "ai.secondary.retries", "expected an integer, got a boolean", id="bool"
    ),
    pytest.param(
        "[ai.primary]\nretries = 11\n", 2, "ai.primary.retries", "must be between 0 and 10, got 11", id="retries"
    ),
    pytest.param(
        "ai.breaker.failure_rate = 0\n", 1, "ai.breaker.failure_rate", "must be in (0, 1], got 0", id="dotted-key"
    ),
    pytest.param(
        "[ai]\nprimary = { timeout_s = 0 }\n", 2, "ai.primary.timeout_s", "must be greater than 0", id="inline"
    ),
    pytest.param("ai = 3\n", 1, "ai", "expected a table, got an integer", id="not-a-table"),
    pytest.param("version = 2\n", 1, "version", "expected a label (a non-empty string), got an integer", id="version"),
    pytest.param(
        '[detect.intent_thresholds]\nrefund_request = 0.7\n"billing.x" = 1.5\n',
        3,
        'detect.intent_thresholds."billing.x"',
        "must be between 0 and 1, got 1.5",
        id="quoted-key",
    ),
    pytest.param(
        '[detect.frustration]\nnegative_words = [\n  "useless",\n  # a comment, "quoted" [ ] =\n  7,\n]\n',
        5,
        "detect.frustration.negative_words[1]",
        "expected a string, got an integer",
        id="multi-line-array",
    ),
    pytest.param(
        '[reasons.low_confidence]\ntiers = ["deterministic", "humane"]\n',
        2,
        "reasons.low_confidence.tiers[1]",
        'unknown tier "humane"; expected one of retry, deterministic, human, deferral',
        id="bad-tier",
    ),
    pytest.param(
        '[reasons.user_request]\npriority = "high"\ntiers = ["retry", "human"]\n',
        3,
        "reasons.user_request.tiers[0]",
        '"retry" is only for system_error',
        id="retry-outside-system-error",
    ),
    pytest.param(
        '[reasons.system_error]\ntiers = ["human", "retry"]\n',
        2,
        "reasons.system_error.tiers[1]",
        '"retry" must come first',
        id="retry-not-first",
    ),
    pytest.param(
        '[reasons.other]\ntiers = ["human", "deferral", "human"]\n',
        2,
        "reasons.other.tiers[2]",
        'tier "human" is already in the ladder',
        id="repeated-tier",
    ),
    pytest.param(
        "[reasons.other]\ntiers = []\n", 2, "reasons.other.tiers", "must name at least one tier", id="no-tiers"
    ),
    pytest.param(
        '[reasons.other]\npriority = "asap"\n',
        2,
        "reasons.other.priority",
        'expected one of low, normal, high, urgent, got "asap"',
        id="priority",
    ),
    pytest.param(
        "[reasons.other]\nsla_s = 1.5\n", 2, "reasons.other.sla_s", "expected an integer, got a float", id="sla"
    ),
    pytest.param("[reasons.other]\nsla_s = 0\n", 2, "reasons.other.sla_s", "must be at least 1, got 0", id="sla-zero"),
    pytest.param(
        '[reasons.other.messages]\nhuman = "Hi"\nbot = "Hi"\n',
        3,
        "reasons.other.messages.bot",
        "unknown key; expected one of deferral, deterministic, human, retry",
        id="message-tier",
    ),
    pytest.param(
        '[reasons.low_confidense]\ntiers = ["human"]\n',
        1,
        "reasons.low_confidense",
        "unknown key; expected one of low_confidence, missing_data, other",
        id="reason-code",
    ),
    pytest.param(
        toml(
            """
            [[guardrails]]
            name = "a"
            applies_to = ["ai"]
            keywords = ["x"]
            action = "flag"

            [[guardrails]]
            name = "a"
            applies_to = ["ai"]
            keywords = ["y"]
            action = "flag"
            """
        ),
        8,
        "guardrails[1].name",
        'guardrail name "a" is already used by guardrails[0]',
        id="duplicate-guardrail",
    ),
    pytest.param(
        toml(
            """
            [[guardrails]]
            name = "a"
            applies_to = ["ai"]
            keywords = ["x"]
            action = "flag"

            [[guardrails]]
            name = "cards"
            applies_to = ["customer"]
            patterns = ['\\d{16}', '(unclosed']
            action = "block"
            """
        ),
        10,
        "guardrails[1].patterns[1]",
        "not a valid regular expression: missing ), unterminated subpattern at position 0",
        id="bad-regex",
    ),
    pytest.param(
        '# rules\n[[guardrails]]\nname = "a"\napplies_to = ["ai"]\naction = "flag"\n',
        2,
        "guardrails[0]",
        "a guardrail needs at least one keyword or pattern",
        id="guardrail-matches-nothing",
    ),
    pytest.param(
        '[[guardrails]]\nname = "a"\napplies_to = ["ai", "bot"]\nkeywords = ["x"]\naction = "flag"\n',
        3,
        "guardrails[0].applies_to[1]",
        'expected "customer" or "ai", got "bot"',
        id="applies-to",
    ),
    pytest.param(
        '[[guardrails]]\nname = "a"\napplies_to = ["ai"]\nkeywords = ["x"]\n',
        1,
        "guardrails[0].action",
        "missing; this key is required",
        id="guardrail-action-missing",
    ),
    pytest.param(
        '[guardrails]\nname = "a"\n',
        1,
        "guardrails",
        "expected an array of tables ([[guardrails]]), got a table",
        id="guardrails-table",
    ),
    pytest.param(
        toml(
            """
            [[flows]]
            name = "order"
            keywords = ["order"]
            answer = "Noted {order}."

            [[flows.steps]]
            field = "order"
            prompt = "Your order number, {name}?"

            [[flows.steps]]
            field = "name"
            prompt = "Your name?"
            """
        ),
        8,
        "flows[0].steps[0].prompt",
        "placeholder {name} is not collected by an earlier step (available: none)",
        id="placeholder-not-collected",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nintents = ["i"]\nanswer = "Sent to {email}."\n',
        4,
        "flows[0].answer",
        "placeholder {email} is not a step's field (available: none)",
        id="answer-placeholder",
    ),
    pytest.param(
        toml(
            """
            [[flows]]
            name = "f"
            intents = ["i"]
            answer = "ok"
            [[flows.steps]]
            field = "a"
            prompt = "a?"
            [[flows.steps]]
            field = "b"
            prompt = "b?"
            retry_prompt = "b, not {a"
            """
        ),
        11,
        "flows[0].steps[1].retry_prompt",
        "expected '}' before end of string (write {{ or }} for a literal brace)",
        id="stray-brace",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nintents = ["i"]\nanswer = "ok"\n[[flows.steps]]\nfield = "order-id"\nprompt = "?"\n',
        6,
        "flows[0].steps[0].field",
        'must be an identifier (letters, digits and _), got "order-id"',
        id="step-field",
    ),
    pytest.param(
        toml(
            """
            [[flows]]
            name = "f"
            intents = ["i"]
            answer = "{a}"
            [[flows.steps]]
            field = "a"
            prompt = "a?"
            [[flows.steps]]
            field = "a"
            prompt = "again?"
            pattern = '^\\d+$'
            """
        ),
        9,
        "flows[0].steps[1].field",
        'field "a" is already used by flows[0].steps[0]',
        id="step-field-twice",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nintents = ["i"]\nanswer = "ok"\n'
        '[[flows.steps]]\nfield = "a"\nprompt = "?"\npattern = "[a-"\n',
        8,
        "flows[0].steps[0].pattern",
        "not a valid regular expression: unterminated character set",
        id="step-pattern",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nanswer = "ok"\n',
        1,
        "flows[0]",
        "a flow needs at least one intent or keyword",
        id="flow-no-trigger",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nintents = ["i"]\nanswer = "ok"\nmax_attempts = 0\n',
        5,
        "flows[0].max_attempts",
        "must be at least 1, got 0",
        id="max-attempts",
    ),
    pytest.param(
        '[[flows]]\nname = "f"\nintents = ["i"]\nanswer = "ok"\n\n'
        '[[flows]]\nname = "f"\nkeywords = ["k"]\nanswer = "ok"\n',
        7,
        "flows[1].name",
        'flow name "f" is already used by flows[0]',
        id="duplicate-flow",
    ),
    pytest.param(
        '[hours]\ntimezone = "Europe/Pariss"\n',
        2,
        "hours.timezone",
        'unknown time zone "Europe/Pariss" (e.g. "Europe/Paris", "UTC")',
        id="time-zone",
    ),
    pytest.param(
        '[hours]\nmonday = ["09:00-17:00"]\n', 1, "hours.timezone", "missing; this key is required", id="no-zone"
    ),
    pytest.param(
        '[hours]\ntimezone = "UTC"\nmonday = [\n  "09:00-12:30",\n  "13:30-18:00",\n  "12:00-13:00",\n]\n',
        6,
        "hours.monday[2]",
        "overlaps monday[0]",
        id="overlapping-hours",
    ),
    pytest.param(
        '[hours]\ntimezone = "UTC"\ntuesday = ["9:00-17:00"]\n',
        3,
        "hours.tuesday[0]",
        'expected "HH:MM-HH:MM" (e.g. "09:00-17:30"), got "9:00-17:00"',
        id="hours-format",
    ),
    pytest.param(
        '[hours]\ntimezone = "UTC"\nfriday = ["18:00-09:00"]\n',
        3,
        "hours.friday[0]",
        "18:00-09:00 must end after it starts",
        id="hours-backwards",
    ),
    pytest.param(
        '[hours]\ntimezone = "UTC"\nfunday = ["10:00-11:00"]\n',
        3,
        "hours.funday",
        "unknown key; expected one of friday",
        id="day",
    ),
    pytest.param(
        '[hours]\ntimezone = "UTC"\nholidays = ["2026-12-25", "2026-02-30"]\n',
        3,
        "hours.holidays[1]",
        'expected a date "YYYY-MM-DD", got "2026-02-30"',
        id="holiday-date",
    ),
    pytest.param(
        '[deferral]\nconfirm = "We will call {contact} at {when}."\n',
        2,
        "deferral.confirm",
        "placeholder {when} is not one Desk fills in (available: {contact}, {time})",
        id="confirm-placeholder",
    ),
    pytest.param(
        "[deferral]\nmax_wait_s = -5\n", 2, "deferral.max_wait_s", "must be at least 0, got -5", id="deferral-negative"
    ),
    pytest.param(
        '[deferral]\nwhen_closed = "yes"\n', 2, "deferral.when_closed", "expected a boolean (true or false)", id="flag"
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), INVALID)
def test_an_invalid_file_names_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    problems = problems_of(text, source="shop/policy.toml")
    assert len(problems) == 1, problems
    assert (problems[0].line, problems[0].field) == (line, field), problems
    assert message in problems[0].message, problems
    assert (
        str(PolicyError(problems, source="shop/policy.toml"))
        == f"shop/policy.toml:{line}: {field}: {problems[0].message}"
    )


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = toml(
        """
        [deferral]
        max_wait_s = -1

        [ai.primary]
        timeout_s = "soon"
        retries = 1.5
        """
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.toml")
    assert str(caught.value).splitlines() == [
        "p.toml:2: deferral.max_wait_s: must be at least 0, got -1",
        "p.toml:5: ai.primary.timeout_s: expected a number, got a string",
        "p.toml:6: ai.primary.retries: expected an integer, got a float",
    ]
    assert caught.value.code == "invalid_policy"
    assert caught.value.fields == {
        "deferral.max_wait_s": "must be at least 0, got -1",
        "ai.primary.timeout_s": "expected a number, got a string",
        "ai.primary.retries": "expected an integer, got a float",
    }


def test_each_range_that_overlaps_an_earlier_one_is_named() -> None:
    text = '[hours]\ntimezone = "UTC"\nsunday = ["12:00-13:00", "09:00-18:00", "10:00-11:00", "18:00-19:00"]\n'
    assert problems_of(text) == (
        Problem(3, "hours.sunday[2]", "overlaps sunday[1]"),
        Problem(3, "hours.sunday[0]", "overlaps sunday[1]"),
    )


def test_strings_that_look_like_toml_do_not_move_the_lines() -> None:
    text = toml(
        '''
        [[flows]]
        name = "f"
        intents = ["i"]
        answer = """
        [[flows]]
        name = "not a table" # nor a comment
        """
        [[flows.steps]]
        field = 'a'
        prompt = "[x] = \\" # still a string"
        [[flows.steps]]
        field = "b"
        prompt = "{c}"
        '''
    )
    assert problems_of(text) == (
        Problem(13, "flows[0].steps[1].prompt", "placeholder {c} is not collected by an earlier step (available: {a})"),
    )


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[deferral]\nask_time = "Quand préférez-vous ?"\n'.encode("latin-1"))
    with pytest.raises(PolicyError) as caught:
        load_policy(str(path))
    assert str(caught.value) == f"{path}:2: (syntax): the file is not UTF-8 text"


# --- PolicySource -----------------------------------------------------------------------------------------------

VALID_A = "[ai.primary]\ntimeout_s = 3\n"
VALID_B = "[ai.primary]\ntimeout_s = 4\n"
INVALID_C = "[ai.primary]\ntimeout_s = 0\n"


def error_of(source: PolicySource) -> str | None:
    return source.last_error


def write(path: Path, text: str) -> None:
    """Write, then move the mtime forward: two writes within the file system's clock tick still look changed."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_reload_takes_a_changed_valid_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "policy.toml"
    write(path, VALID_A)
    source = PolicySource(str(path))
    assert (source.current.ai.primary.timeout_s, source.current.source, source.last_error) == (3.0, str(path), None)
    assert source.reload() is False  # unchanged
    write(path, VALID_A)
    assert source.reload() is False  # touched, same bytes
    caplog.set_level(logging.INFO, logger="desk.fallback.policy_file")
    write(path, VALID_B)
    assert source.reload() is True
    assert source.current.ai.primary.timeout_s == 4.0
    assert source.current.version == f"custom+{digest(VALID_B)}"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"policy file {path} loaded: version custom+{digest(VALID_B)}")
    ]
    assert source.reload() is False


def test_reload_keeps_the_policy_in_force_on_an_invalid_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "policy.toml"
    write(path, VALID_A)
    source = PolicySource(str(path))
    in_force = source.current
    write(path, INVALID_C)
    assert source.reload() is False
    assert source.current is in_force
    assert source.last_error == f"{path}:2: ai.primary.timeout_s: must be greater than 0, got 0"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert source.last_error in warnings[0].getMessage()
    assert in_force.version in warnings[0].getMessage()
    write(path, INVALID_C + "\n")  # still invalid, the same problem: not logged again
    assert source.reload() is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    write(path, VALID_A)  # back to the text in force
    assert source.reload() is False
    assert (source.current, error_of(source)) == (in_force, None)
    write(path, VALID_B)
    assert source.reload() is True
    assert (source.current.ai.primary.timeout_s, error_of(source)) == (4.0, None)


def test_reload_keeps_the_policy_in_force_when_the_file_goes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, VALID_A)
    source = PolicySource(str(path))
    in_force = source.current
    path.unlink()
    assert source.reload() is False
    assert source.current is in_force
    assert source.last_error == f"{path}: cannot read the file: No such file or directory"
    write(path, VALID_A)
    assert source.reload() is False
    assert (source.current, error_of(source)) == (in_force, None)
    write(path, VALID_B)
    assert source.reload() is True


def test_a_source_starts_only_from_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write(path, INVALID_C)
    with pytest.raises(PolicyError, match=r"policy\.toml:2: ai\.primary\.timeout_s: must be greater than 0"):
        PolicySource(str(path))
    with pytest.raises(FileNotFoundError):
        PolicySource(str(tmp_path / "missing.toml"))
    built_in = PolicySource(None)
    assert (built_in.current, built_in.reload(), built_in.last_error) == (BUILT_IN, False, None)
