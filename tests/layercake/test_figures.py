"""layercake.figures: reading the bench results, and measuring counters on request."""

from __future__ import annotations

import json
import os
from pathlib import Path

from layercake.figures import figures_for, load_figures

LADDER = {
    "schema": "layercake.bench/1",
    "kind": "ladder",
    "measured_at": "2026-11-29T02:00:00Z",
    "environment": {"cpus": 2},
    "results": [
        {
            "target": "gunicorn/flask",
            "server": "gunicorn",
            "layer": "flask",
            "interface": "wsgi",
            "kind": "layer",
            "endpoint": "plaintext",
            "concurrency": 64,
            "rps": {"median": 3900.0, "min": 3800.0, "max": 4000.0},
            "errors": 0,
        },
        {
            "target": "gunicorn/flask",
            "server": "gunicorn",
            "layer": "flask",
            "interface": "wsgi",
            "kind": "layer",
            "endpoint": "plaintext",
            "concurrency": 16,
            "rps": {"median": 3500.0, "min": 3400.0, "max": 3600.0},
            "errors": 0,
        },
        {
            "target": "floor",
            "server": "floor",
            "layer": None,
            "interface": None,
            "kind": "floor",
            "endpoint": "plaintext",
            "concurrency": 64,
            "rps": {"median": 120000.0},
            "errors": 0,
        },
    ],
}
IN_PROCESS = {
    "schema": "layercake.bench/1",
    "kind": "in_process",
    "measured_at": "2026-11-29T01:00:00Z",
    "results": [
        {
            "layer": "flask",
            "endpoint": "plaintext",
            "status": 200,
            "us_per_request": {"median": 40.0},
            "counters": {"calls": 170, "lines": 500, "by_package": {"layer": {"calls": 3, "lines": 4}}},
        },
        {
            "layer": "flask",
            "endpoint": "json",
            "status": 200,
            "us_per_request": {"median": 43.0, "min": 41.0},
            "counters": {
                "calls": 183,
                "lines": 543,
                "by_package": {
                    "layer": {"calls": 4, "lines": 4},
                    "driver": {"calls": 4, "lines": 17},
                    "werkzeug": {"calls": 102, "lines": 297},
                },
            },
        },
    ],
}


def test_no_results_no_figures(tmp_path: Path):
    figures = load_figures(tmp_path)
    assert figures.empty and figures.cost("flask") is None and figures.rps("flask") is None


def test_reads_the_ladder_and_in_process_documents(tmp_path: Path):
    (tmp_path / "ladder.json").write_text(json.dumps(LADDER))
    (tmp_path / "inprocess.json").write_text(json.dumps(IN_PROCESS))
    figures = load_figures(tmp_path)
    cost = figures.cost("flask")
    assert cost is not None and cost.endpoint == "json"  # json preferred over plaintext
    assert (cost.us, cost.calls, cost.lines, cost.library_lines) == (43.0, 183, 543, 297)
    assert cost.measured_at == "2026-11-29T01:00:00Z" and cost.origin.endswith("inprocess.json")
    best = figures.rps("flask")
    assert best is not None and (best.rps, best.concurrency, best.rps_min) == (3900.0, 64, 3800.0)
    assert figures.rps("floor") is not None and figures.ladder_measured_at == "2026-11-29T02:00:00Z"


def test_newest_file_wins(tmp_path: Path):
    old, new = tmp_path / "a.json", tmp_path / "b.json"
    old.write_text(json.dumps(LADDER))
    changed = json.loads(json.dumps(LADDER))
    changed["results"][0]["rps"]["median"] = 5000.0
    new.write_text(json.dumps(changed))
    os.utime(old, (1, 1))
    assert load_figures(tmp_path).rps("flask").rps == 5000.0  # type: ignore[union-attr]


def test_broken_files_are_skipped(tmp_path: Path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_figures(tmp_path).empty


def test_missing_layers_are_measured_now(tmp_path: Path):
    figures = figures_for(["bare_wsgi"], measure=True, bench_dir=tmp_path)
    cost = figures.cost("bare_wsgi")
    assert cost is not None and cost.calls and cost.lines and cost.us
    assert "measured just now" in cost.origin
    again = figures_for(["bare_wsgi"], measure=True, bench_dir=tmp_path).cost("bare_wsgi")
    assert again is not None and (again.calls, again.lines) == (cost.calls, cost.lines)  # deterministic


def test_no_measuring_when_told_not_to(tmp_path: Path):
    assert figures_for(["bare_wsgi"], measure=False, bench_dir=tmp_path).cost("bare_wsgi") is None


def test_reads_the_scratch_servers_comparison_apart_from_the_ladder(tmp_path: Path):
    # servers/bench_scratch.py's document: req/s per round for each server on its bare layer.
    doc = {
        "environment": {"cpus": 2},
        "args": {"rounds": 3, "connections": 64},
        "rps": {
            "scratch-asgi": [16000.0, 16400.0, 16200.0],
            "uvicorn-h11": [12000.0, 12400.0, 12300.0],
            "scratch-wsgi": [14000.0, 13000.0, 14100.0],
        },
        "errors": {"scratch-asgi": 0, "uvicorn-h11": 0, "scratch-wsgi": 1},
    }
    (tmp_path / "scratch-servers.json").write_text(json.dumps(doc))
    figures = load_figures(tmp_path)
    assert figures.throughput == [] and figures.rps("bare_asgi") is None  # not the ladder
    (best,) = figures.server_rps("scratch-asgi")
    assert (best.layer, best.endpoint, best.concurrency, best.rps, best.rps_min) == (
        "bare_asgi",
        "plaintext",
        64,
        16200.0,
        16000.0,
    )
    assert figures.server_rps("scratch-wsgi")[0].errors == 1
    assert {t.server for t in figures.servers} == {"scratch-asgi", "uvicorn-h11", "scratch-wsgi"}
    assert best.measured_at and best.measured_at.startswith(("committed", "file dated"))


def test_reads_the_parser_by_loop_matrix_rows_as_their_servers(tmp_path: Path):
    # bench_scratch's matrix names a row "server/options"; the reader and the site ask by server.
    doc = {
        "environment": {"cpus": 2},
        "args": {"rounds": 2, "connections": 64, "rows": "goals"},
        "rps": {
            "scratch-asgi/httptools+uvloop": [5300.0, 5400.0],
            "uvicorn/httptools+uvloop": [9800.0, 9900.0],
            "scratch-asgi/h11+asyncio": [3700.0, 3800.0],
            "gunicorn-gthread/8-threads": [2500.0, 2520.0],
        },
    }
    (tmp_path / "scratch-goals.json").write_text(json.dumps(doc))
    figures = load_figures(tmp_path)
    rows = figures.server_rps("scratch-asgi")
    assert [(t.variant, t.rps, t.layer) for t in rows] == [
        ("httptools+uvloop", 5350.0, "bare_asgi"),
        ("h11+asyncio", 3750.0, "bare_asgi"),
    ]
    assert rows[0].server_label == "scratch-asgi httptools+uvloop"
    assert figures.server_rps("gunicorn-gthread")[0].layer == "bare_wsgi"
