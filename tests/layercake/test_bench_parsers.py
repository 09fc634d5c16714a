"""What the parser costs, in process (layercake/bench/parsers.py), and the parsers experiment's plan.

No timing is asserted: the µs figures are only checked to exist.  The call counts are deterministic, so the tests
check what they must show -- that llhttp leaves less Python to run than h11 -- and that they are the same twice.
"""

from __future__ import annotations

import pytest

from layercake.bench import parsers
from layercake.bench.experiments import parser_matrix, parsers_config
from layercake.bench.runner import BenchConfig, plan_targets
from servers.core.parsers import PARSERS


def test_every_installed_backend_has_a_parse_and_a_cycle_row() -> None:
    rows = parsers.parser_costs(seconds=0.01)
    backends = {(r.backend, r.what) for r in rows}
    assert {("h11", "parse"), ("h11", "cycle"), ("h11 alone", "cycle")} <= backends
    for r in rows:
        assert r.us > 0 and r.python_calls > 0 or r.backend == "httptools alone"
    text = parsers.render(rows)
    assert "Python calls" in text and "h11" in text


def test_call_counts_are_deterministic_and_llhttp_runs_less_python() -> None:
    pytest.importorskip("httptools")
    first = parsers.count_calls(parsers._parse("httptools"))
    assert parsers.count_calls(parsers._parse("httptools")) == first
    h11_calls, _ = parsers.count_calls(parsers._parse("h11"))
    assert first[0] < h11_calls
    cycle = parsers._cycle("httptools")
    assert cycle is not None
    assert parsers.count_calls(cycle) == parsers.count_calls(cycle)  # keep-alive: every request costs the same


def test_the_parsers_experiment_plans_each_pair_once_with_its_flags() -> None:
    targets = plan_targets(parsers_config(BenchConfig()))
    ids = [t.id for t in targets]
    assert ids[0] == "floor" and len(ids) == len(set(ids))
    matrix = {t.id: dict(t.flags) for t in parser_matrix()}
    if "httptools" in PARSERS and "scratch-asgi(httptools+uvloop)/bare_asgi" in matrix:
        assert matrix["scratch-asgi(httptools+uvloop)/bare_asgi"] == {"http": "httptools", "loop": "uvloop"}
        assert matrix["uvicorn(httptools+uvloop)/bare_asgi"] == {"http": "httptools", "loop": "uvloop"}
    assert matrix["scratch-wsgi(h11)/bare_wsgi"] == {"http": "h11", "threads": 8}
