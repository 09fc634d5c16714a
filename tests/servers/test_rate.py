"""The minimum-data-rate tracker (servers/core/rate.py), driven with made-up monotonic times."""

from __future__ import annotations

import pytest

from servers.core.limits import Limits
from servers.core.rate import RateTracker


def test_zero_rate_disables() -> None:
    assert RateTracker.start(0, 10.0, now=0.0) is None


def test_a_whole_head_at_once_is_never_too_slow() -> None:
    tracker = RateTracker.start(500, 10.0, now=100.0)
    assert tracker is not None
    tracker.received(8000, now=100.001)
    # grace 10 s + 8000/500 = 16 s more: a head that arrived whole has 26 s of credit, more than any timeout.
    assert tracker.deadline() == pytest.approx(126.0)
    assert not tracker.too_slow(now=125.9) and tracker.too_slow(now=126.1)


def test_slowloris_one_byte_a_second_is_cut_just_after_the_grace_period() -> None:
    tracker = RateTracker.start(500, 10.0, now=0.0)
    assert tracker is not None
    cut_at = None
    for second in range(1, 30):
        if tracker.too_slow(now=float(second)):
            cut_at = second
            break
        tracker.received(1, now=float(second))
    # After 10 s it has sent 10 bytes, worth 0.02 s: the deadline is 10.02 s, so the check at 11 s cuts it.
    assert cut_at == 11
    assert "below the minimum of 500 B/s after 10 s of grace" in tracker.describe(11.0)


def test_a_client_keeping_up_the_rate_is_never_cut() -> None:
    tracker = RateTracker.start(500, 2.0, now=0.0)
    assert tracker is not None
    for tick in range(1, 1000):  # 600 bytes a second for ~17 minutes of made-up time
        now = tick / 10
        tracker.received(60, now=now)
        assert not tracker.too_slow(now)


def test_time_paused_is_not_the_clients() -> None:
    tracker = RateTracker.start(100, 1.0, now=0.0)
    assert tracker is not None
    tracker.received(100, now=0.5)  # credit until 0 + 1 + 1 = 2.0
    tracker.pause(now=1.0)  # the app stopped reading the body; flow control paused the socket
    assert tracker.deadline() == float("inf") and not tracker.too_slow(now=60.0)
    tracker.resume(now=61.0)  # 60 s paused: the deadline moves by 60 s
    assert tracker.deadline() == pytest.approx(62.0)
    assert not tracker.too_slow(61.9) and tracker.too_slow(62.1)
    tracker.pause(now=62.5)
    tracker.received(0, now=70.0)  # a read ends a pause too
    assert tracker.deadline() == pytest.approx(69.5)


def test_rate_and_bad_arguments() -> None:
    tracker = RateTracker.start(500, 1.0, now=0.0)
    assert tracker is not None
    tracker.received(1000, now=1.0)
    assert tracker.rate(now=2.0) == pytest.approx(500.0)
    with pytest.raises(ValueError):
        tracker.received(-1, now=3.0)
    with pytest.raises(ValueError):
        RateTracker.start(500, -1.0, now=0.0)


def test_the_limits_default_is_apaches_min_rate() -> None:
    limits = Limits()
    assert limits.min_rate == 500  # mod_reqtimeout MinRate=500
    assert 0 < limits.min_rate_grace < limits.header_timeout  # the rate, not the cap, cuts a slowloris
