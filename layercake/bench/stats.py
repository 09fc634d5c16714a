"""Statistics for repeated runs: median, spread, ratios -- nothing a reader has to trust blindly.

Theory of operation
-------------------
A single benchmark run on a shared two-core machine is an anecdote.  The harness
repeats every cell (target x endpoint x concurrency) ``--repeat`` times, interleaved
(A B C A B C ...) so slow drift -- another process waking up, the CPU clocking down --
lands on every target alike, and summarises each cell by its **median** with the
**min-max** range beside it.  Medians, not means: one disturbed run moves a mean but
not a median of three.  No standard deviations or confidence intervals: with three to
five samples they would claim a precision the data doesn't have; the range is the
honest statement of spread.

A **ratio** divides two medians *measured in the same session* (the bare layer on the
same server, or a chosen baseline pair).  Ratios across sessions or machines are what
``bench --compare`` is for, and it says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Cell = TypeVar("Cell")  # whatever a benchmark cell is: interleave keeps its type


@dataclass(frozen=True)
class Spread:
    """The median of some samples and their range."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Iterable[float]) -> Spread:
        values = sorted(samples)
        if not values:
            raise ValueError("no samples")
        return cls(statistics.median(values), values[0], values[-1], len(values))

    @property
    def relative_range(self) -> float:
        """(max - min) / median: 0.05 means the runs spread over 5% of the median."""
        return (self.high - self.low) / self.median if self.median else 0.0

    def to_dict(self, digits: int = 2) -> dict[str, float | int]:
        return {
            "median": round(self.median, digits),
            "min": round(self.low, digits),
            "max": round(self.high, digits),
            "n": self.n,
        }


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is zero."""
    if value is None or not reference:
        return None
    return value / reference


def interleave(cells: Sequence[Cell], rounds: int) -> list[tuple[int, Cell]]:
    """The run order: every cell once per round, rounds one after another (A B C A B C ...).

    Returns (round, cell) pairs.  Within a round the order alternates direction
    (A B C, C B A, ...) so no cell always runs right after the same neighbour -- a
    server that is slow to cool down after a heavy load then penalises both of its
    neighbours equally over the rounds.
    """
    order: list[tuple[int, Cell]] = []
    for r in range(rounds):
        sequence = cells if r % 2 == 0 else list(reversed(cells))
        order.extend((r, cell) for cell in sequence)
    return order


def percent_change(new: float, old: float) -> float | None:
    """(new - old) / old as a percentage, None when old is zero."""
    return (new - old) / old * 100 if old else None


def human_rate(value: float) -> str:
    """12_345 -> '12.3k'; used in tables where the digits beyond three are noise anyway."""
    if value >= 100_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def human_us(value: float) -> str:
    """Microseconds for a human: 850 -> '850µs', 12_300 -> '12.3ms'."""
    if value >= 1_000_000:
        return f"{value / 1e6:.2f}s"
    if value >= 1000:
        return f"{value / 1000:.1f}ms"
    return f"{value:.0f}µs"
