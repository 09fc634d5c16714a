"""The ladder at a glance: each layer's own size, contract score and in-process cost.

This is what ``layercake tour`` prints.  The contract runs in-process (no socket); the
cost comes from :func:`layercake.bench.costs.quick_ladder`, which measures each
layer in a fresh subprocess on ``GET /json``: median µs per request over short
batches, and the deterministic counters (Python calls, distinct lines) that say how
much code each abstraction runs.  It is a quick look; ``layercake bench`` is the
careful measurement over real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from layercake.contract import CaseResult, run_contract
from layercake.source import parse
from layers import LAYERS, Layer


def own_lines(layer: Layer) -> int:
    """Lines of code (not comments, docstrings or blanks) in the layer's own folder."""
    return sum(parse(p).code_lines for p in sorted(layer.directory.glob("*.py")))


@dataclass
class TourRow:
    layer: Layer
    own_lines: int
    passed: int
    total: int
    us_per_request: float
    calls: int
    lines_run: int
    ratio_to_bare: float
    calls_by_package: dict[str, int] = field(default_factory=dict)
    failures: list[CaseResult] = field(default_factory=list)


def tour_rows(seconds_per_layer: float = 0.3) -> Iterator[TourRow]:
    """Verify, then measure, each layer in ladder order."""
    from layercake.bench.costs import quick_ladder

    bare_us: dict[str, float] = {}  # the first rung of each interface is the yardstick
    for layer in LAYERS.values():
        results = run_contract(None, layer)
        (cost,) = quick_ladder(seconds_per_layer, layers=[layer.name])
        bare_us.setdefault(layer.interface, cost.us)
        yield TourRow(
            layer,
            own_lines(layer),
            sum(r.ok for r in results),
            len(results),
            cost.us,
            cost.calls,
            cost.lines,
            cost.us / bare_us[layer.interface],
            cost.calls_by_package,
            [r for r in results if not r.ok],
        )
