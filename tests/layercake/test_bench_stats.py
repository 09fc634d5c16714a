"""Statistics of repeated runs."""

from __future__ import annotations

import pytest

from layercake.bench.stats import Spread, human_rate, human_us, interleave, percent_change, ratio


def test_spread_is_median_and_range() -> None:
    s = Spread.of([30.0, 10.0, 20.0])
    assert (s.median, s.low, s.high, s.n) == (20.0, 10.0, 30.0, 3)
    assert s.relative_range == pytest.approx(1.0)
    assert Spread.of([1.0, 2.0, 3.0, 100.0]).median == 2.5  # one outlier does not move a median much
    assert s.to_dict() == {"median": 20.0, "min": 10.0, "max": 30.0, "n": 3}


def test_spread_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        Spread.of([])


def test_interleave_alternates_direction_by_round() -> None:
    order = interleave(["A", "B", "C"], 3)
    assert [cell for _, cell in order] == ["A", "B", "C", "C", "B", "A", "A", "B", "C"]
    assert [r for r, _ in order] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_ratio_and_change() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(50.0, 0.0) is None and ratio(None, 1.0) is None
    assert percent_change(110.0, 100.0) == pytest.approx(10.0)
    assert percent_change(1.0, 0.0) is None


def test_human_formats() -> None:
    assert human_rate(123_456) == "123k"
    assert human_rate(12_345) == "12.3k"
    assert human_rate(999) == "999"
    assert human_us(850) == "850µs"
    assert human_us(12_300) == "12.3ms"
    assert human_us(2_500_000) == "2.50s"
