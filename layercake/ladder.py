"""The ladder at a glance: each layer's own size, contract score and in-process cost.

This is what ``layercake tour`` prints.  The cost is measured with the in-process
drivers (no socket, no server, no ``wsgiref.validate`` wrapper): a batch of
``GET /json`` requests timed with ``perf_counter``, repeated, and the median batch
taken, so one slow batch (a GC pass, the other core's noise) does not move the figure.
It is a quick look; ``layercake bench`` is the careful measurement.
"""

from __future__ import annotations

import io
import statistics
import time
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

from layercake.contract import CaseResult, run_contract
from layercake.inprocess import driver_for
from layers import LAYERS, Layer


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    lines: set[int] = set()
    prev = tokenize.INDENT
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            prev = tok.type if tok.type != tokenize.COMMENT else prev
            continue
        # A string standing alone as a statement is a docstring: prose, not code.
        if tok.type == tokenize.STRING and prev in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE):
            prev = tok.type
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
        prev = tok.type
    return len(lines)


def own_lines(layer: Layer) -> int:
    """Lines of code in the layer's own folder (shared modules not counted)."""
    return sum(code_lines(p.read_text()) for p in sorted(layer.directory.glob("*.py")))


def time_inprocess(layer: Layer, seconds: float = 0.4, target: str = "/json") -> float:
    """Median microseconds per request for ``GET target``, in-process."""
    kwargs = {"validate": False} if layer.interface == "wsgi" else {}
    driver = driver_for(layer.load(), layer.interface, **kwargs)
    try:
        for _ in range(20):  # warm up: imports, caches, first-call paths
            driver.request("GET", target)
        batch, samples = 50, []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(samples) < 3:
            started = time.perf_counter()
            for _ in range(batch):
                driver.request("GET", target)
            samples.append((time.perf_counter() - started) / batch * 1e6)
        return statistics.median(samples)
    finally:
        driver.close()


@dataclass
class TourRow:
    layer: Layer
    own_lines: int
    passed: int
    total: int
    us_per_request: float
    ratio_to_bare: float = 1.0
    failures: list[CaseResult] = field(default_factory=list)


def tour_rows(seconds_per_layer: float = 0.4) -> Iterator[TourRow]:
    """Verify and time each layer in ladder order; ratios are against the bare layer of the same interface."""
    bare: dict[str, float] = {}
    for layer in LAYERS.values():
        results = run_contract(None, layer)
        us = time_inprocess(layer, seconds_per_layer)
        bare.setdefault(layer.interface, us)
        yield TourRow(layer, own_lines(layer), sum(r.ok for r in results), len(results), us,
                      us / bare[layer.interface], [r for r in results if not r.ok])
