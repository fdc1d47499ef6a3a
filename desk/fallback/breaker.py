"""A circuit breaker per AI provider: closed → open → half-open → closed (or open again).

- closed: every call goes through. Each result enters a sliding window of `window_s`; when the window holds at
  least `min_calls` results and the failed share is at or over `failure_rate`, the breaker opens. The rule is
  checked after every result, so the call that brings the window to `min_calls` can open it even when it succeeded.
- open: no call goes through. After `cooldown_s` the breaker is half-open (reported as such at once, even before
  anyone asks to call).
- half_open: `half_open_calls` trial calls go through; the first trial result decides. A success closes the breaker
  with an empty window; a failure opens it again and the cool-down restarts.

Late results. A call can outlive the state it started in: a slow call started while closed may finish after the
breaker opened, or after it has already closed again. Such a result says how the provider was before that decision,
so it is dropped: it neither re-opens a breaker that just closed on a successful trial nor closes one that opened
meanwhile, and it does not enter the new window. Each state change starts a new `epoch`; a caller reads `epoch`
right after `allow()` and passes it to `record()`, which ignores results of earlier epochs. Without an epoch a
result counts as belonging to the current one.

Single-threaded: meant for the event loop, no locks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from desk.domain.policy import BreakerPolicy

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


class CircuitBreaker:
    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._state = CLOSED
        self._epoch = 0
        self._opened_at = 0.0
        self._trials = 0  # trial slots taken in the current half-open epoch
        self._window: deque[tuple[float, bool]] = deque()
        self._failures = 0

    @property
    def state(self) -> str:
        self._advance(self._clock())
        return self._state

    @property
    def epoch(self) -> int:
        """Changes with every state change: results recorded with an older epoch are ignored."""
        self._advance(self._clock())
        return self._epoch

    @property
    def failure_rate(self) -> float | None:
        """The failed share of the calls in the window, or None when it holds none."""
        self._prune(self._clock())
        if not self._window:
            return None
        return self._failures / len(self._window)

    @property
    def calls(self) -> int:
        self._prune(self._clock())
        return len(self._window)

    def allow(self) -> bool:
        """May a call go through now? When half-open, a True takes one of the trial slots."""
        self._advance(self._clock())
        if self._state == CLOSED:
            return True
        if self._state == HALF_OPEN and self._trials < self.policy.half_open_calls:
            self._trials += 1
            return True
        return False

    def abandon(self, epoch: int | None = None) -> None:
        """Give back the trial slot of an allowed call that ended without a result (it was cancelled)."""
        self._advance(self._clock())
        if self._state == HALF_OPEN and (epoch is None or epoch == self._epoch) and self._trials > 0:
            self._trials -= 1

    def record(self, ok: bool, *, epoch: int | None = None) -> str | None:
        """Count a call's result; the new state when this result changed it, else None."""
        now = self._clock()
        self._advance(now)
        if epoch is not None and epoch != self._epoch:
            return None  # a late result of an earlier state: see the module docstring
        if self._state == OPEN:
            return None  # no call was allowed in this epoch: only an epoch-less late result lands here
        if self._state == HALF_OPEN:
            if ok:
                self._change(CLOSED)
                self._window.clear()
                self._failures = 0
                return CLOSED
            self._open(now)
            return OPEN
        self._window.append((now, ok))
        if not ok:
            self._failures += 1
        self._prune(now)
        calls = len(self._window)
        if calls >= self.policy.min_calls and self._failures / calls >= self.policy.failure_rate:
            self._open(now)
            return OPEN
        return None

    def update(self, policy: BreakerPolicy) -> None:
        """Apply a reloaded policy: the window and the state are kept, the new limits apply from now on."""
        self.policy = policy

    def _open(self, now: float) -> None:
        self._change(OPEN)
        self._opened_at = now

    def _change(self, state: str) -> None:
        self._state = state
        self._epoch += 1
        self._trials = 0

    def _advance(self, now: float) -> None:
        if self._state == OPEN and now - self._opened_at >= self.policy.cooldown_s:
            self._change(HALF_OPEN)

    def _prune(self, now: float) -> None:
        window = self._window
        horizon = now - self.policy.window_s
        while window and window[0][0] < horizon:
            _, ok = window.popleft()
            if not ok:
                self._failures -= 1
