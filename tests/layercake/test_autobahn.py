"""Autobahn's WebSocket testsuite in `layercake probe --websocket`: the report reader on a small index, and the
whole non-compression suite against scratch-asgi for real (strict on every case: 0 FAILED, 0 NON-STRICT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layercake import autobahn
from layercake.autobahn import AutobahnRun, AutobahnUnavailable, read_reports


def write_index(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    cases = {
        "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2, "remoteCloseCode": 1000,
                  "reportfile": "x_case_1_1_1.json"},
        "10.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 5, "remoteCloseCode": 1000,
                   "reportfile": "x_case_10_1_1.json"},
        "3.2": {"behavior": "NON-STRICT", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": 1002,
                "reportfile": "x_case_3_2.json"},
        "7.1.6": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL", "duration": 9,
                  "remoteCloseCode": 1000, "reportfile": "x_case_7_1_6.json"},
    }  # fmt: skip
    (outdir / "index.json").write_text(json.dumps({"x": cases}))
    (outdir / "x_case_3_2.json").write_text(json.dumps({"description": "Send <b>RSV = 2</b>, then Ping."}))
    (outdir / "x_case_7_1_6.json").write_text(json.dumps({"description": "Send 256K message  then close."}))


def test_read_reports_counts_verdicts_and_describes_what_is_not_ok(tmp_path: Path) -> None:
    write_index(tmp_path)
    run = AutobahnRun("x", "bare_asgi", cases=read_reports(tmp_path, "x"))
    assert [c.case_id for c in run.cases] == ["1.1.1", "3.2", "7.1.6", "10.1.1"]  # numeric order, not text order
    assert run.summary() == {"OK": 2, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 0, "FAILED": 0}
    assert not run.strict()
    assert [(c.case_id, c.description) for c in run.not_ok()] == [
        ("3.2", "Send RSV = 2, then Ping."),
        ("7.1.6", "Send 256K message then close."),
    ]
    assert run.cases[1].report == "x_case_3_2.html"
    assert run.cell() == "2 OK, 1 NON-STRICT, 1 INFO"
    assert "| 3.2 | NON-STRICT | OK | Send RSV = 2, then Ping. |" in autobahn.grid_markdown([run])


def test_no_python27_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAYERCAKE_AUTOBAHN_HOME", str(tmp_path))
    monkeypatch.setattr(autobahn, "find_python27", lambda: None)
    with pytest.raises(AutobahnUnavailable, match="needs Python 2.7.*pyenv install 2.7.18"):
        autobahn.wstest()


def test_wsgi_servers_are_reported_not_run(tmp_path: Path) -> None:
    (run,) = autobahn.autobahn_servers(["scratch-wsgi"], tmp_path)
    assert run.skipped.startswith("WSGI") and not run.cases and run.cell().startswith("n/a")


def _wstest() -> Path:
    try:
        return autobahn.wstest()  # builds the cached virtualenv on first use; .ci/run does it before the suite
    except AutobahnUnavailable as error:
        pytest.skip(error.message.splitlines()[0])


# About 30 s on a quiet 2-core machine, nine tenths of it the 9.* cases (messages up to 16 MiB); a machine shared
# with other work can take several times that, hence a timeout above the suite's default 120 s.
@pytest.mark.timeout(900)
def test_autobahn_against_scratch_asgi_is_strict_on_every_case(tmp_path: Path) -> None:
    _wstest()
    out = tmp_path / "probe.json"
    done = subprocess.run(
        [sys.executable, "-m", "layercake", "probe", "scratch-asgi", "--case", "valid/get", "--websocket",
         "--websocket-reports", str(tmp_path / "reports"), "--json", str(out)],
        capture_output=True, text=True, timeout=850, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WebSocket: Autobahn testsuite" in done.stdout
    (probe,) = json.loads(out.read_text())
    ws = probe["websocket"]
    verdicts = {case["case_id"]: case["behavior"] for case in ws["cases"]}
    assert len(verdicts) > 200  # the whole suite ran (about 300 cases without compression)
    assert not any(case_id.startswith(("12.", "13.")) for case_id in verdicts)  # compression excluded
    bad = {case_id: v for case_id, v in verdicts.items() if v in ("FAILED", "NON-STRICT")}
    assert bad == {}, bad
    assert ws["strict"] and ws["summary"]["FAILED"] == 0 and ws["summary"]["NON-STRICT"] == 0
    # Autobahn's HTML reports are kept: an index and a page per case.
    assert (tmp_path / "reports" / "scratch-asgi" / "index.html").exists()
    assert (tmp_path / "reports" / "scratch-asgi" / ws["cases"][0]["report"]).exists()


def test_site_links_the_reports_from_the_websocket_page() -> None:
    from layercake.site.build import PROJECT, relink

    reports = sorted((PROJECT / "docs" / "autobahn").rglob("*.html"))
    if not reports:
        pytest.skip("no Autobahn reports in docs/autobahn")
    page = reports[0].relative_to(PROJECT / "docs").as_posix()
    html = relink(f'<a href="{page}">case</a>', PROJECT / "docs" / "websocket.md", "docs/websocket.html")
    assert html == f'<a href="../{page}">case</a>'  # docs/autobahn/... is copied to autobahn/... in the site
