"""The results document: schema, rendering and comparison, from runs parsed out of real wrk captures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from layercake.bench import report
from layercake.bench.environment import describe
from layercake.bench.loadgen import parse_wrk_output
from layercake.bench.runner import Run, summarise

FIXTURES = Path(__file__).parent / "fixtures"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "bench.md"


def ladder_document() -> dict:
    """A ladder document built the way the runner builds one, from captured wrk output."""
    plain = parse_wrk_output((FIXTURES / "wrk_plaintext_c64.txt").read_text())
    errors = parse_wrk_output((FIXTURES / "wrk_404_c8.txt").read_text())
    targets = {
        "floor": {
            "id": "floor",
            "server": "floor",
            "layer": "floor",
            "interface": "http",
            "kind": "floor",
            "flags": {},
            "native_command": "python -m layercake.bench.floor --port 1",
            "verification": {"method": "quick", "passed": 1, "total": 1, "ok": True, "failures": [], "blocking": []},
        },
        "uvicorn/bare_asgi": {
            "id": "uvicorn/bare_asgi",
            "server": "uvicorn",
            "layer": "bare_asgi",
            "interface": "asgi",
            "kind": "layer",
            "flags": {"http": "httptools"},
            "native_command": "uvicorn ...",
            "verification": {
                "method": "contract+quick",
                "passed": 23,
                "total": 24,
                "ok": True,
                "failures": ["ws_echo: boom"],
                "blocking": [],
            },
        },
    }
    runs = [Run("floor", "plaintext", 64, r, plain) for r in range(3)]
    runs += [Run("uvicorn/bare_asgi", "plaintext", 64, 0, errors)]
    env = describe()
    env.update(pinning={"server_cpu": 0, "loadgen_cpu": 1}, generator={"kind": "wrk", "threads": 1})
    return {
        "schema": report.SCHEMA_ID,
        "kind": "ladder",
        "command": "layercake bench",
        "measured_at": "2026-01-01T00:00:00Z",
        "elapsed_s": 1.0,
        "environment": env,
        "settings": {
            "endpoints": ["plaintext"],
            "concurrency": [64],
            "duration_s": 1,
            "repeat": 3,
            "baseline": "floor",
        },
        "targets": list(targets.values()),
        "runs": [r.to_dict() for r in runs],
        "results": summarise(runs, targets, "floor"),
    }


def test_a_runner_document_follows_the_schema() -> None:
    doc = ladder_document()
    assert report.validate(doc) == []
    assert report.validate(json.loads(json.dumps(doc))) == []


def test_summary_rows() -> None:
    rows = {r["target"]: r for r in ladder_document()["results"]}
    floor, asgi = rows["floor"], rows["uvicorn/bare_asgi"]
    assert floor["rps"]["n"] == 3 and floor["ratio_to_baseline"] == 1.0 and floor["ratio_to_bare"] is None
    assert not floor["flagged"] and floor["errors"] == 0
    assert asgi["flagged"] and asgi["non_2xx"] == 155943 and asgi["ratio_to_bare"] == 1.0
    assert asgi["ratio_to_baseline"] == pytest.approx(asgi["rps"]["median"] / floor["rps"]["median"], abs=1e-3)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda d: d.pop("environment"), "environment: missing"),
        (lambda d: d["results"][0].pop("rps"), "results[0].rps: missing"),
        (lambda d: d["results"][0].update(flagged="no"), "results[0].flagged: str"),
        (lambda d: d["runs"][1].update(requests=1.5), "runs[1].requests: float"),
        (lambda d: d.update(schema="other/9"), "schema is 'other/9'"),
        (lambda d: d.update(kind="mystery"), "kind is 'mystery'"),
    ],
)
def test_the_validator_names_what_is_wrong(breakage, expected: str) -> None:
    doc = copy.deepcopy(ladder_document())
    breakage(doc)
    assert any(expected in p for p in report.validate(doc)), report.validate(doc)


def test_docs_carry_the_current_schema() -> None:
    assert report.schema_markdown() in DOCS.read_text(), "regenerate the schema table in docs/bench.md"


def test_markdown_and_table_show_flags_and_servers() -> None:
    doc = ladder_document()
    md = report.markdown(doc)
    assert "| uvicorn/bare_asgi | plaintext | 64 |" in md and "⚠" in md
    assert "`uvicorn ...`" in md and "ws_echo" in md
    assert "wrk" in report.generator_line(doc)
    assert report.ladder_table(doc).row_count == 2


def test_builtin_generator_says_what_it_is() -> None:
    doc = ladder_document()
    doc["environment"]["generator"] = {"kind": "builtin", "threads": None, "ceiling_rps": 41000}
    line = report.generator_line(doc)
    assert "BUILT-IN" in line and "41.0k req/s" in line


def test_charts_are_written(tmp_path: Path) -> None:
    paths = report.charts(ladder_document(), tmp_path)
    assert {p.name for p in paths} == {"ladder-rps.png", "ladder-latency.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_compare_lines_up_cells_and_warns_about_environment(tmp_path: Path) -> None:
    a, b = ladder_document(), ladder_document()
    b["environment"]["cpu_model"] = "Another CPU"
    for row in b["results"]:
        for k in ("median", "min", "max"):
            row["rps"][k] *= 2
    table, warnings = report.compare(a, b)
    assert table.row_count == 2
    assert any("cpu_model" in w for w in warnings)
    path = tmp_path / "a.json"
    report.write_json(a, path)
    assert report.load(path)["kind"] == "ladder"
    path.write_text('{"schema": "nope"}')
    from layercake.errors import LayercakeError

    with pytest.raises(LayercakeError, match="not a layercake results document"):
        report.load(path)
