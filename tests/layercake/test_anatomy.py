"""layercake anatomy: measuring a ladder step by step -- counters, deltas, the document and its views.

No timing assertions: the µs figures are whatever the machine gives; what is checked is
that they are there, and that the deterministic counters are identical across runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest
from click.testing import CliRunner

from layercake import anatomy
from layercake.anatomy import Progress, anatomy_document, get_ladder, ladders, measure_step
from layercake.cli import cli
from layercake.errors import UnknownName

SECONDS = 0.02  # timing is not under test; keep each step short


def _exact_counters(row: dict[str, Any]) -> dict[str, Any]:
    """The counters a run must reproduce: all of them; when a worker thread takes part
    (``Step.threads``), every package's calls and C calls but the stdlib's."""
    c = row["counters"]
    if row.get("exact", True):
        return {k: c[k] for k in ("calls", "c_calls", "lines", "by_package")}
    return {p: {k: v[k] for k in ("calls", "c_calls")} for p, v in c["by_package"].items() if p != "stdlib"}


@pytest.mark.parametrize(
    ("layer", "step"),
    [
        ("werkzeug", "form_parsing"),
        ("flask", "pydantic_body"),
        ("starlette", "base_http_middleware"),
        ("starlette", "threadpool"),
        ("fastapi", "body_model"),
        ("fastapi", "def_endpoint"),
    ],
)
def test_two_runs_give_identical_counts(layer: str, step: str) -> None:
    ladder = get_ladder(layer)
    threaded = ladder.threaded()[[s.key for s in ladder.steps].index(step)]
    first, second = measure_step(layer, step, SECONDS), measure_step(layer, step, SECONDS)
    assert first["problem"] is None and second["problem"] is None
    for row in (first, second):
        row["exact"] = not threaded
    assert _exact_counters(first) == _exact_counters(second)
    assert first["counters"]["calls"] > 0 and 0 < first["us_per_request"]["best"] <= first["us_per_request"]["median"]


def test_a_feature_shows_up_in_its_own_package() -> None:
    """FastAPI's first step adds FastAPI's calls; pydantic validation in Flask adds pydantic's C calls."""
    rows = {key: measure_step("fastapi", key, SECONDS) for key in ("starlette_response", "fastapi_response")}
    assert "fastapi" not in rows["starlette_response"]["counters"]["by_package"]
    assert rows["fastapi_response"]["counters"]["by_package"]["fastapi"]["calls"] > 0
    flask = {key: measure_step("flask", key, SECONDS) for key in ("error_handler", "pydantic_body")}
    assert flask["pydantic_body"]["counters"]["by_package"]["pydantic"]["c_calls"] > 0
    assert "pydantic" not in flask["error_handler"]["counters"]["by_package"]


def test_a_wrong_answer_is_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from layercake.anatomy import Answer

    wrong = replace(get_ladder("werkzeug"), answer=Answer(200, "application/json", {"item_id": 41}))
    monkeypatch.setattr(anatomy, "get_ladder", lambda layer: wrong)
    row = anatomy.measure_step_here("werkzeug", "bare_wsgi_form", SECONDS)
    assert "expected" in row["problem"] and "counters" not in row


@pytest.fixture(scope="module")
def werkzeug_doc() -> dict[str, Any]:
    return anatomy_document("werkzeug", SECONDS, command="layercake anatomy werkzeug")


def test_the_document_schema(werkzeug_doc: dict[str, Any]) -> None:
    doc = werkzeug_doc
    assert doc["schema"] == anatomy.SCHEMA and doc["kind"] == "anatomy" and doc["layer"] == "werkzeug"
    assert doc["interrupted"] is False and doc["environment"]["python"]
    assert doc["request"] == {
        "method": "PUT",
        "path": "/items/42?q=cake",
        "content_type": "application/x-www-form-urlencoded",
        "body": "name=cake&price=9.5",
    }
    steps = doc["steps"]
    assert [s["step"] for s in steps] == [s.key for s in get_ladder("werkzeug").steps]
    assert [s["index"] for s in steps] == list(range(1, len(steps) + 1))
    for i, row in enumerate(steps):
        assert row["problem"] is None and row["exact"] is True
        assert set(row["us_per_request"]) >= {"best", "median", "min", "max", "n", "windows"}
        assert set(row["wall_us_per_request"]) >= {"median", "min", "max", "n"}
        assert set(row["counters"]) >= {"calls", "c_calls", "lines", "by_package"}
        assert row["source"]["path"] == "layers/werkzeug/anatomy.py" and row["source"]["first_line"] > 0
        assert row["title"] and row["change"].startswith("+") and row["doc"]
        if i == 0:
            assert row["delta"] is None
        else:
            before = steps[i - 1]
            assert row["delta"]["calls"] == row["counters"]["calls"] - before["counters"]["calls"]
            assert row["delta"]["lines"] == row["counters"]["lines"] - before["counters"]["lines"]
            assert isinstance(row["delta"]["us"], float) and isinstance(row["delta"]["by_package"], dict)
    assert "costliest step" in doc["headline"]
    json.dumps(doc)  # JSON-ready as it is


def test_a_whole_ladder_twice_gives_identical_counts(werkzeug_doc: dict[str, Any]) -> None:
    again = anatomy_document("werkzeug", SECONDS)
    assert [_exact_counters(r) for r in again["steps"]] == [_exact_counters(r) for r in werkzeug_doc["steps"]]
    assert again["settings"]["rounds_done"] == anatomy.ROUNDS


def test_markdown_and_waterfall(werkzeug_doc: dict[str, Any], tmp_path: Path) -> None:
    text = anatomy.markdown(werkzeug_doc, "werkzeug.png")
    assert "# Anatomy of werkzeug" in text and "![waterfall" in text and werkzeug_doc["headline"] in text
    assert text.count("\n| ") == len(werkzeug_doc["steps"]) + 1  # header and one row per step
    png = anatomy.chart(werkzeug_doc, tmp_path / "w.png")
    image = mpimg.imread(png)
    assert image.shape[0] > 100 and image.std() > 0.01  # drawn, not blank
    assert anatomy.load(anatomy.write_json(werkzeug_doc, tmp_path / "w.json"))["layer"] == "werkzeug"


def test_ctrl_c_keeps_the_steps_measured() -> None:
    def stop_at_third(i: int, total: int, step: anatomy.Step) -> None:
        if i == 2:
            raise KeyboardInterrupt

    doc = anatomy_document("werkzeug", SECONDS, progress=Progress(on_start=stop_at_third))
    assert doc["interrupted"] is True and [r["index"] for r in doc["steps"]] == [1, 2]
    assert "*Interrupted" in anatomy.markdown(doc)


def test_the_cli_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["anatomy", "werkzeug", "--seconds", str(SECONDS), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "costliest step" in result.output and "form_parsing" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {"werkzeug.json", "werkzeug.md", "werkzeug.png"}
    assert "](werkzeug.png)" in (tmp_path / "werkzeug.md").read_text()


def test_the_cli_exits_130_on_ctrl_c_and_writes_what_it_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = anatomy.measure_step
    calls = []

    def interrupted_after_two(layer: str, key: str, seconds: float, helper: Any = None) -> dict[str, Any]:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(layer, key, seconds, helper)

    monkeypatch.setattr(anatomy, "measure_step", interrupted_after_two)
    out = tmp_path / "w.json"
    result = CliRunner().invoke(cli, ["anatomy", "werkzeug", "--seconds", str(SECONDS), "--json", str(out)])
    assert result.exit_code == 130, result.output
    assert "interrupted: 2 of 5 steps counted, not timed" in result.output
    assert len(json.loads(out.read_text())["steps"]) == 2


def test_the_cli_lists_ladders_and_refuses_unknown_names() -> None:
    listed = CliRunner().invoke(cli, ["anatomy"])
    assert listed.exit_code == 0 and all(name in listed.output for name in ladders())
    wrong = CliRunner().invoke(cli, ["anatomy", "fastapy"])
    assert wrong.exit_code == 2 and "choose one of" in wrong.output and "fastapi" in wrong.output
    with pytest.raises(UnknownName):
        get_ladder("fastapi").step("no_such_step")


def test_server_option_refuses_a_server_of_the_other_interface() -> None:
    result = CliRunner().invoke(cli, ["anatomy", "flask", "--server", "uvicorn"])
    assert result.exit_code == 2 and "WSGI server" in result.output
    result = CliRunner().invoke(cli, ["anatomy", "flask", "--server", "nginx"])
    assert result.exit_code == 2 and "choose one of" in result.output


def test_one_step_on_a_real_server() -> None:
    """--server: the step is started on a real server by its import string, checked, and loaded with wrk."""
    ladder = get_ladder("starlette")
    out = anatomy.measure_on_server(ladder, "router", "uvicorn")
    assert out.get("problem") is None, out
    assert out["rps"] > 0 and out["p99_us"] > 0 and out["socket_errors"] == 0 and out["non_2xx"] == 0


def test_the_site_page_shows_chart_table_and_each_steps_code(werkzeug_doc: dict[str, Any], tmp_path: Path) -> None:
    import re

    from layercake.site.anatomy import write_anatomy
    from layercake.site.build import BuildReport, Site

    project = Path(__file__).resolve().parents[2]
    docs = tmp_path / "docs"
    anatomy.write_json(werkzeug_doc, docs / "werkzeug.json")
    anatomy.chart(werkzeug_doc, docs / "werkzeug.png")
    out = tmp_path / "site"
    site = Site(out, BuildReport(out), "now", "abc")
    pages = write_anatomy(site, project, docs)
    assert "anatomy/werkzeug.html" in pages and (out / "anatomy" / "index.html").is_file()
    page = (out / "anatomy" / "werkzeug.html").read_text()
    assert '<img src="werkzeug.png"' in page and (out / "anatomy" / "werkzeug.png").is_file()
    assert page.count('<section class="anatomy-step"') == len(werkzeug_doc["steps"])
    assert werkzeug_doc["headline"].split(":")[0] in page and "<table" in page
    # Each changed line links to its own line of the annotated source page.
    source = (project / "layers" / "werkzeug" / "anatomy.py").read_text().splitlines()
    links = re.findall(r'href="\.\./source/layers/werkzeug/anatomy\.py\.html#L-(\d+)"', page)
    assert len(links) > 10
    assert "request.form" in page and any("req.form" in source[int(n) - 1] for n in links)
    # A ladder with no committed run still gets its page, saying how to measure it.
    flask = (out / "anatomy" / "flask.html").read_text()
    assert "not measured yet" in flask and "layercake anatomy flask --out docs/anatomy" in flask
