"""Deterministic flows (tier 2 of the ladder): step through a policy flow one customer answer at a time. Pure.

A flow asks its steps' prompts in order, keeps each answer that fits the step's pattern under the step's field, and
ends with its answer, where `{field}` placeholders take what was collected. An answer that does not fit is asked
again with the step's retry prompt, at most `max_attempts` times; then the flow gives up and the ladder goes on.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache

from desk.domain.policy import Flow

MAX_ANSWER_CHARS = 200


@dataclass(frozen=True)
class FlowTurn:
    say: str  # what the desk says now ("" when it gave up: the next tier speaks)
    step: int  # the step now waiting for an answer (len(steps) once done)
    attempts: int  # answers to that step that did not fit
    collected: dict[str, str] = field(default_factory=dict)
    done: bool = False
    gave_up: bool = False


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, collected: dict[str, str]) -> str:
    """`template` with `{field}` replaced by what was collected; unknown fields are left as written."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if not names:
        return template
    return template.format_map(_Missing(collected))


@lru_cache(maxsize=256)
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source, re.IGNORECASE)


def begin(flow: Flow) -> FlowTurn:
    if not flow.steps:
        return FlowTurn(say=render(flow.answer, {}), step=0, attempts=0, done=True)
    return FlowTurn(say=render(flow.steps[0].prompt, {}), step=0, attempts=0)


def answer(flow: Flow, *, step: int, attempts: int, collected: dict[str, str], text: str) -> FlowTurn:
    """The customer answered the prompt of `step`."""
    if step >= len(flow.steps):  # already done: nothing left to ask
        return FlowTurn(say="", step=step, attempts=attempts, collected=collected, done=True)
    current = flow.steps[step]
    value = text.strip()[:MAX_ANSWER_CHARS]
    if current.pattern is not None and not _pattern(current.pattern).search(value):
        attempts += 1
        if attempts >= flow.max_attempts:
            return FlowTurn(say="", step=step, attempts=attempts, collected=collected, gave_up=True)
        retry = current.retry_prompt or current.prompt
        return FlowTurn(say=render(retry, collected), step=step, attempts=attempts, collected=collected)
    collected = {**collected, current.field: value}
    following = step + 1
    if following == len(flow.steps):
        return FlowTurn(say=render(flow.answer, collected), step=following, attempts=0, collected=collected, done=True)
    prompt = render(flow.steps[following].prompt, collected)
    return FlowTurn(say=prompt, step=following, attempts=0, collected=collected)
