"""How the demo AI misbehaves, switchable while the demo runs, so a new user can watch every tier of Desk's fallback.

The demo AI is two providers: the primary (the integration's `webhook_url`) and a backup (its
`fallback_webhook_url`). A mode decides what each does with a turn, and `Modes.outcome` draws that decision per
turn. Event deliveries are not the providers' business: they are acknowledged in every mode.

- `healthy`: both answer at once.
- `slow`: the primary takes `SLOW_S`, longer than the built-in policy's per-attempt limit (8 s), so Desk times
  out, retries and fails over to the backup, which answers at once.
- `flaky`: the primary fails (503) about half the time, so retries, failover and in the end the breaker show.
- `down`: both fail at once, so Desk goes down the ladder: a deterministic flow where one fits, a person
  otherwise, deferral when nobody can take it.

One event loop reads and switches the mode; the lock only keeps a draw and a switch from interleaving when a
caller uses threads.
"""

from __future__ import annotations

import random
import threading
from typing import Literal

__all__ = [
    "BACKUP",
    "DOWN",
    "EXPLANATIONS",
    "FLAKY",
    "FLAKY_FAILURE_RATE",
    "HEALTHY",
    "MODES",
    "PRIMARY",
    "SLOW",
    "SLOW_S",
    "Modes",
    "Outcome",
    "Role",
]

HEALTHY = "healthy"
SLOW = "slow"
FLAKY = "flaky"
DOWN = "down"
MODES = (HEALTHY, SLOW, FLAKY, DOWN)

SLOW_S = 12.0  # over the built-in policy's 8 s per attempt: Desk gives up on the primary
FLAKY_FAILURE_RATE = 0.5

Role = Literal["primary", "backup"]
PRIMARY: Role = "primary"
BACKUP: Role = "backup"
Outcome = Literal["answer", "slow", "unavailable"]

EXPLANATIONS = {
    HEALTHY: "The assistant answers at once.",
    SLOW: (
        "The assistant takes longer than Desk waits: Desk retries, then the backup assistant answers "
        '(its replies start with "(backup assistant)").'
    ),
    FLAKY: (
        "The assistant fails about half the time: Desk retries and falls over to the backup, and after a few "
        "failures the circuit breaker opens on the floor."
    ),
    DOWN: (
        "Both assistants fail: Desk runs its own flow for 'where is my order', brings in a person for anything "
        "else, and offers to get back to the customer when nobody can join."
    ),
}

# What each provider does with a turn in each mode; "flaky" is drawn per turn.
_OUTCOMES: dict[str, dict[str, Outcome | Literal["flaky"]]] = {
    HEALTHY: {PRIMARY: "answer", BACKUP: "answer"},
    SLOW: {PRIMARY: "slow", BACKUP: "answer"},
    FLAKY: {PRIMARY: "flaky", BACKUP: "answer"},
    DOWN: {PRIMARY: "unavailable", BACKUP: "unavailable"},
}


class Modes:
    """The current mode, shared by both providers. `seed` makes the flaky draws repeatable (for tests)."""

    def __init__(self, mode: str = HEALTHY, *, seed: int | None = None) -> None:
        self._mode = _checked(mode)
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return self._mode

    def switch(self, mode: str) -> None:
        """Raises ValueError for a name not in `MODES`."""
        checked = _checked(mode)
        with self._lock:
            self._mode = checked

    def outcome(self, role: Role) -> Outcome:
        """What `role` does with the turn it is answering now."""
        with self._lock:
            planned = _OUTCOMES[self._mode][role]
            if planned != "flaky":
                return planned
            return "unavailable" if self._random.random() < FLAKY_FAILURE_RATE else "answer"


def _checked(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown demo AI mode {mode!r}: one of {', '.join(MODES)}")
    return mode
