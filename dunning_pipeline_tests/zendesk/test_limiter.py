"""The export endpoints' budget: a sliding window that sleeps only when the budget is used up."""

import pytest

from dunning_pipeline.zendesk.client import SlidingWindowLimiter


class FakeClock:
    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_ten_calls_pass_and_the_eleventh_sleeps_until_the_oldest_leaves_the_window():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert limiter.acquire() == 0.0
        clock.now += 1.5  # calls at 1000.0, 1001.5, ..., 1013.5
    assert clock.sleeps == []
    # now = 1015.0; the oldest call (1000.0) leaves the window at 1060.0
    assert limiter.acquire() == pytest.approx(45.0)
    assert clock.sleeps == [pytest.approx(45.0)]
    # The next one waits only for the second-oldest call (1001.5 + 60).
    assert limiter.acquire() == pytest.approx(1.5)


def test_no_sleep_when_calls_are_spread_over_more_than_the_window():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        limiter.acquire()
        clock.now += 6.0  # exactly 10 per minute
    assert clock.sleeps == []


def test_a_burst_after_a_quiet_minute_passes_without_sleeping():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.now += 60.0
    for _ in range(3):
        assert limiter.acquire() == 0.0
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(60.0)]


def test_on_wait_reports_the_wait_and_invalid_budgets_are_refused():
    clock = FakeClock()
    waits = []
    limiter = SlidingWindowLimiter(1, 60.0, clock=clock, sleep=clock.sleep, on_wait=waits.append)
    limiter.acquire()
    clock.now += 20
    limiter.acquire()
    assert waits == [pytest.approx(40.0)]
    with pytest.raises(ValueError, match="max_calls must be at least 1"):
        SlidingWindowLimiter(0)
