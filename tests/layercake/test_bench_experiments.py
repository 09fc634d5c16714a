"""The sync-vs-async lab: each experiment's smoke mode for real, its document against its schema, the
experiment apps on real servers, Ctrl-C keeping what was measured, the Go peer, and cleanup.

No timing is asserted anywhere: the smoke runs check the harness (servers started, verified, loaded,
summarised, drawn), not how fast anything is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from layercake.bench import experiments
from layercake.bench.experiments import LabConfig, common
from layercake.bench.experiments.common import Check
from layercake.bench.runner import Target, start_target
from layers.shared.work import expected

LAB = list(experiments.LAB)


def children() -> set[int]:
    """PIDs of this process's live children (from /proc), zombies excluded."""
    mine = os.getpid()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == mine and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --- the experiment apps answer correctly on their servers ------------------------------------------------------------


APPS = [
    ("uvicorn", "fastapi", "layers.fastapi.experiments:app", 40),
    ("scratch-asgi", "fastapi", "layers.fastapi.experiments:app", 40),
    ("uvicorn", "fastapi", "layers.fastapi.experiments:app_raised", 256),
    ("uvicorn", "starlette", "layers.starlette.experiments:app", 40),
    ("scratch-asgi", "starlette", "layers.starlette.experiments:app_raised", 256),
]


@pytest.mark.parametrize(("server", "layer", "app", "tokens"), APPS, ids=[f"{a[0]}-{a[2]}" for a in APPS])
def test_blocking_apps_answer_every_variant_and_report_their_limiter(
    server: str, layer: str, app: str, tokens: int
) -> None:
    from layercake.bench.experiments import blocking

    with common.start(server, layer, app, blocking.checks()) as srv:  # start() verifies; raises on a wrong answer
        assert httpx.get(srv.url + "/limiter").json()["total_tokens"] == tokens
        assert httpx.get(srv.url + "/block/async-sleep?ms=-1").status_code == 422
        assert httpx.get(srv.url + "/block/def-sleep?ms=abc").status_code == 422
        assert httpx.get(srv.url + "/nope").status_code == 404


@pytest.mark.parametrize(
    ("server", "layer"),
    [
        ("gunicorn-gthread", "bare_wsgi"),
        ("scratch-wsgi", "bare_wsgi"),
        ("uvicorn", "bare_asgi"),
        ("scratch-asgi", "bare_asgi"),
    ],
)
def test_cpu_apps_do_the_work_they_claim(server: str, layer: str) -> None:
    checks = [Check("/plaintext", body=b"Hello, World!"), Check("/cpu?n=1234", json=expected(1234))]
    with common.start(server, layer, f"layers.{layer}.experiments:app", checks) as srv:
        assert httpx.get(srv.url + "/cpu?n=-5").status_code == 422
        assert httpx.get(srv.url + "/cpu?n=x").status_code == 422
        assert httpx.post(srv.url + "/cpu").status_code == 405
        assert httpx.get(srv.url + "/other").status_code == 404


def test_a_failed_verification_names_the_route_and_stops_the_server() -> None:
    from layercake.errors import LayercakeError

    before = children()
    with pytest.raises(LayercakeError, match="failed verification: GET /plaintext: body"):
        common.start("uvicorn", "bare_asgi", "layers.bare_asgi.experiments:app", [Check("/plaintext", body=b"no")])
    assert children() <= before


# --- each experiment's smoke mode, for real ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in LAB if n != "capacity"])  # capacity: the cleanup test below
def test_smoke_run_validates_against_its_schema_and_renders(name: str, tmp_path: Path) -> None:
    mod = experiments.module(name)
    seen: list[tuple[str, int, int]] = []
    doc = experiments.run_lab(name, LabConfig(smoke=True), lambda *a: seen.append(a), f"test {name}")
    assert mod.validate(json.loads(json.dumps(doc))) == []  # what is written is what validates
    assert doc["kind"] == f"experiment:{name}" and not doc["partial"]
    assert doc["points"], doc["notes"]
    assert seen and seen[-1][1] == seen[-1][2]  # the bar reached its total
    text = mod.markdown(doc)
    assert text.startswith("# Experiment") and f"test {name}" in text
    (png,) = mod.charts(doc, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_schema_catches_a_broken_document() -> None:
    from layercake.bench.experiments import threadpool

    doc = common.envelope("threadpool", "x", {})
    doc["targets"] = []
    doc["points"] = [{"target": "t", "concurrency": "8", "rps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0}]
    problems = threadpool.validate(doc)
    assert "points[0].concurrency: str, expected int" in problems
    assert any(p.startswith("points[0].errors: missing") for p in problems)


def test_capacity_smoke_validates_and_leaves_no_descriptor_and_no_process_behind(tmp_path: Path) -> None:
    import resource

    from layercake.bench.experiments import capacity

    limit_before = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds, procs = open_fds(), children()
    doc = experiments.run_lab("capacity", LabConfig(smoke=True, servers=["uvicorn"], concurrency=[30]))
    assert open_fds() <= fds, "a held connection or a log file was left open"
    assert children() <= procs, "a server (or one of its workers) outlived the experiment"
    assert capacity.validate(json.loads(json.dumps(doc))) == [] and not doc["partial"]
    assert capacity.markdown(doc).startswith("# Experiment")
    (png,) = capacity.charts(doc, tmp_path)  # (matplotlib keeps its font files open: checked after the fds)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == limit_before  # the raised ulimit is put back
    assert doc["fd_limit"]["during"] >= doc["fd_limit"]["before"]
    assert any("ulimit -n" in n for n in doc["notes"])
    http, ws = doc["points"]
    assert (http["mode"], ws["mode"]) == ("http", "ws")
    for p in (http, ws):
        assert p["connected"] == p["answered"] == 30  # every held connection was answered, then held
        assert p["held"]["fds"] >= p["baseline"]["fds"] + 30  # the server holds a descriptor for each
        assert p["serves_new_clients"]


def test_ctrl_c_keeps_the_points_measured_and_stops_everything() -> None:
    procs = children()

    def interrupt_after_first_point(what: str, done: int, total: int) -> None:
        if done >= 2:  # step 1: the server started; step 2: the first load
            raise KeyboardInterrupt

    doc = experiments.run_lab("threadpool", LabConfig(smoke=True), interrupt_after_first_point, "t")
    assert doc["partial"] and len(doc["points"]) == 1
    assert any("interrupted" in n for n in doc["notes"])
    assert experiments.module("threadpool").validate(doc) == []
    assert children() <= procs


def test_cli_writes_the_partial_results_and_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from layercake.cli import cli

    def interrupted(name: str, config: LabConfig, progress: Any, command: str) -> dict[str, Any]:
        def stop(what: str, done: int, total: int) -> None:
            progress(what, done, total)
            if done >= 2:  # after the first load
                raise KeyboardInterrupt

        return experiments.module(name).run(config, stop, command)

    monkeypatch.setattr(experiments, "run_lab", interrupted)
    out = tmp_path / "tp.json"
    result = CliRunner().invoke(
        cli,
        ["bench", "--experiment", "threadpool", "--smoke", "--json", str(out), "--markdown", str(tmp_path / "tp.md")],
    )
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output
    doc = json.loads(out.read_text())
    assert doc["partial"] and len(doc["points"]) == 1
    assert "PARTIAL" in (tmp_path / "tp.md").read_text()


def test_cli_refuses_a_server_the_experiment_does_not_run_on() -> None:
    from layercake.cli import cli

    result = CliRunner().invoke(cli, ["bench", "--experiment", "blocking", "--servers", "waitress"])
    assert result.exit_code == 2 and "uvicorn, scratch-asgi" in result.output
    result = CliRunner().invoke(cli, ["bench", "--smoke"])
    assert result.exit_code == 2 and "--smoke goes with --experiment" in result.output


# --- the Go peer -------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("go"), reason="go is not installed (apt install golang-go)")
def test_go_peer_builds_once_and_answers_its_routes() -> None:
    from layercake.bench import endpoints as ep
    from layercake.bench import go_build

    binary = go_build.build()
    assert go_build.build() == binary and binary.stat().st_mode & 0o111  # cached: the same file, executable
    with start_target(Target("go", "go", "http")) as peer:
        assert ep.quick_check(peer.url, ["plaintext", "json"]) == []
        assert ep.quick_check(peer.url, ["item"]) != []  # it does not pretend to have a store
        assert httpx.get(peer.url + "/json").headers["content-type"] == "application/json"


def test_without_go_the_peer_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from layercake.bench import go_build
    from layercake.errors import LayercakeError

    monkeypatch.setattr(go_build.shutil, "which", lambda name: None)
    assert "apt install golang-go" in (go_build.unavailable() or "")
    with pytest.raises(LayercakeError, match="Go net/http peer is skipped"):
        start_target(Target("go", "go", "http"))


@pytest.mark.parametrize("name", LAB)
def test_docs_bench_md_shows_each_experiments_schema(name: str) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "bench.md"
    table = common.schema_markdown(experiments.module(name).SCHEMA)
    assert table in docs.read_text(encoding="utf-8"), "regenerate the lab's schema tables in docs/bench.md"
