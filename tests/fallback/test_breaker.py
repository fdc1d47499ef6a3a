"""The circuit breaker (desk/fallback/breaker.py) on a clock the test moves: its transitions, its sliding window,
late results of calls that started in an earlier state, and reloaded policies."""

from __future__ import annotations

import pytest

from desk.domain.policy import BreakerPolicy
from desk.fallback.breaker import CircuitBreaker

POLICY = BreakerPolicy(window_s=30.0, min_calls=4, failure_rate=0.5, cooldown_s=10.0, half_open_calls=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(clock: Clock, policy: BreakerPolicy = POLICY) -> CircuitBreaker:
    breaker = CircuitBreaker(policy, clock)
    for _ in range(policy.min_calls):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.state == "open"
    return breaker


def test_a_new_breaker_is_closed_and_lets_calls_through(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    assert breaker.state == "closed"
    assert breaker.failure_rate is None
    assert all(breaker.allow() for _ in range(100))


def test_opens_exactly_at_min_calls_and_failure_rate(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    assert breaker.record(True) is None
    assert breaker.record(True) is None
    assert breaker.record(False) is None
    assert breaker.state == "closed"
    assert breaker.record(False) == "open"  # 2 of 4: exactly the rate, on exactly min_calls
    assert breaker.state == "open"
    assert breaker.failure_rate == 0.5
    assert not breaker.allow()


def test_stays_closed_under_min_calls_even_when_everything_fails(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(POLICY.min_calls - 1):
        assert breaker.record(False) is None
    assert breaker.state == "closed"
    assert breaker.failure_rate == 1.0


def test_stays_closed_under_the_failure_rate(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    for ok in (True, True, True, False, True, True, False):
        assert breaker.record(ok) is None
    assert breaker.state == "closed"
    assert breaker.failure_rate == pytest.approx(2 / 7)


def test_results_older_than_the_window_are_forgotten(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(3):
        breaker.record(False)
    clock.now += POLICY.window_s + 0.001
    assert breaker.failure_rate is None
    assert breaker.record(False) is None  # one failure in the window, not four
    assert breaker.calls == 1
    assert breaker.state == "closed"


def test_the_window_stays_bounded_under_load(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(10_000):
        clock.now += 0.01
        breaker.record(True)
    assert breaker.calls == pytest.approx(POLICY.window_s / 0.01, abs=2)


def test_half_open_after_the_cooldown_even_before_anyone_asks(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += POLICY.cooldown_s - 0.001
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 0.001
    assert breaker.state == "half_open"


def test_half_open_lets_only_its_trial_calls_through(clock: Clock) -> None:
    breaker = opened(clock, BreakerPolicy(min_calls=2, cooldown_s=5.0, half_open_calls=2))
    clock.now += 5.0
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()
    assert breaker.state == "half_open"


def test_a_trial_success_closes_with_an_empty_window(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += POLICY.cooldown_s
    assert breaker.allow()
    assert breaker.record(True) == "closed"
    assert breaker.state == "closed"
    assert breaker.failure_rate is None
    # The old failures are gone: it takes min_calls new ones to open again.
    for _ in range(POLICY.min_calls - 1):
        assert breaker.record(False) is None
    assert breaker.record(False) == "open"


def test_a_trial_failure_opens_again_and_restarts_the_cooldown(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += POLICY.cooldown_s
    assert breaker.allow()
    assert breaker.record(False) == "open"
    clock.now += POLICY.cooldown_s - 0.001
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 0.001
    assert breaker.state == "half_open"


def test_a_late_success_from_before_the_opening_does_not_close_it(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    assert breaker.allow()
    slow = breaker.epoch  # a slow call starts while closed
    for _ in range(POLICY.min_calls):
        breaker.record(False, epoch=breaker.epoch)
    assert breaker.state == "open"
    assert breaker.record(True, epoch=slow) is None
    assert breaker.state == "open"
    clock.now += POLICY.cooldown_s
    assert breaker.record(True, epoch=slow) is None  # nor does it count as the half-open trial
    assert breaker.state == "half_open"


def test_a_late_failure_does_not_reopen_a_breaker_that_just_closed(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    slow = [breaker.epoch for _ in range(POLICY.min_calls)]  # slow calls start while closed
    for _ in range(POLICY.min_calls):
        breaker.record(False, epoch=breaker.epoch)
    clock.now += POLICY.cooldown_s
    assert breaker.allow()
    assert breaker.record(True, epoch=breaker.epoch) == "closed"
    for epoch in slow:
        assert breaker.record(False, epoch=epoch) is None
    assert breaker.state == "closed"
    assert breaker.failure_rate is None  # nor do they enter the new window


def test_a_late_failure_does_not_restart_the_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    slow = breaker.epoch
    for _ in range(POLICY.min_calls):
        breaker.record(False)
    clock.now += POLICY.cooldown_s - 1
    assert breaker.record(False, epoch=slow) is None
    assert breaker.record(False) is None  # an epoch-less result while open: no call was allowed, ignored
    clock.now += 1
    assert breaker.state == "half_open"


def test_an_abandoned_trial_gives_its_slot_back(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += POLICY.cooldown_s
    assert breaker.allow()
    trial = breaker.epoch
    assert not breaker.allow()
    breaker.abandon(trial)
    assert breaker.allow()


def test_abandoning_a_call_of_an_earlier_state_frees_no_trial_slot(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    old = breaker.epoch
    for _ in range(POLICY.min_calls):
        breaker.record(False)
    clock.now += POLICY.cooldown_s
    assert breaker.allow()
    breaker.abandon(old)
    assert not breaker.allow()


def test_a_reloaded_policy_keeps_the_window(clock: Clock) -> None:
    breaker = CircuitBreaker(BreakerPolicy(min_calls=10, failure_rate=0.5, cooldown_s=10.0), clock)
    for _ in range(3):
        assert breaker.record(False) is None
    breaker.update(BreakerPolicy(min_calls=4, failure_rate=0.5, cooldown_s=60.0))
    assert breaker.failure_rate == 1.0
    assert breaker.record(False) == "open"
    clock.now += 10.0
    assert breaker.state == "open"  # the new cool-down applies
    clock.now += 50.0
    assert breaker.state == "half_open"


def test_a_reloaded_shorter_window_forgets_older_results(clock: Clock) -> None:
    breaker = CircuitBreaker(POLICY, clock)
    breaker.record(False)
    clock.now += 10.0
    breaker.record(True)
    breaker.update(BreakerPolicy(window_s=5.0, min_calls=4, failure_rate=0.5))
    assert breaker.calls == 1
    assert breaker.failure_rate == 0.0
