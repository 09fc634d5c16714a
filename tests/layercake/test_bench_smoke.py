"""Short runs of the real thing: the floor, the node peer, and the bench over a real server (no speed asserted)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from layercake.bench import endpoints as ep
from layercake.bench import report
from layercake.bench.runner import (
    BenchConfig,
    Target,
    pin_process_tree,
    plan_cells,
    plan_targets,
    run_bench,
    start_target,
)


def exchange(port: int, payload: bytes, expect: int) -> bytes:
    """Send raw bytes, read until ``expect`` responses (counted by status lines) have arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < expect or not data.endswith((b"!", b"}")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_floor_answers_pipelined_requests_and_skips_bodies() -> None:
    with start_target(Target("floor", "floor", "http")) as floor:
        body = b'{"name":"x","price":1}\r\n\r\n'  # a blank line inside a body must not start a request
        raw = (
            b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
            + b"GET /items/7 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = exchange(floor.port, raw, 3)
        # Bodies have no line ending of their own, so the next status line follows a body directly.
        assert re.findall(rb"HTTP/1\.1 (\d{3})", data) == [b"200", b"201", b"200"]
        assert ep.quick_check(floor.url, ["plaintext", "json", "item", "create"]) == []
        assert b"404" in exchange(floor.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 1)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_node_peer_answers_its_routes() -> None:
    with start_target(Target("node", "node", "http")) as peer:
        assert ep.quick_check(peer.url, ["plaintext", "json"]) == []
        assert ep.quick_check(peer.url, ["item"]) != []  # it does not pretend to have a store


def test_pinning_reaches_every_thread_of_a_process_tree() -> None:
    import os

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)",
        ]
    )
    grandchild = None
    try:
        import time

        children = Path(f"/proc/{child.pid}/task/{child.pid}/children")
        deadline = time.monotonic() + 10
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(children.read_text().split()[0])
        assert pin_process_tree(child.pid, cpus[1]) >= 2
        assert os.sched_getaffinity(grandchild) == {cpus[1]}
        assert os.sched_getaffinity(child.pid) == {cpus[1]}
    finally:
        if grandchild is not None:
            os.kill(grandchild, 9)
        child.kill()
        child.wait()


def test_the_plan_is_the_ladder_and_fits_the_budget() -> None:
    from layercake.bench.runner import DEFAULT_BUDGET, estimate_seconds

    config = BenchConfig()
    targets = plan_targets(config)
    assert [t.id for t in targets] == [
        "floor",
        "gunicorn-gthread/bare_wsgi",
        "gunicorn-gthread/werkzeug",
        "gunicorn-gthread/flask",
        "uvicorn/bare_asgi",
        "uvicorn/starlette",
        "uvicorn/fastapi",
        "gunicorn-gthread/django",
        "uvicorn/django_asgi",
    ]
    assert dict(targets[-1].flags) == {"http": "httptools", "loop": "uvloop"}
    assert dict(targets[1].flags) == {"workers": 1, "threads": 8}
    assert estimate_seconds(targets, plan_cells(targets, config), config) < DEFAULT_BUDGET


def test_parser_and_loop_choices_reach_only_the_servers_that_have_them() -> None:
    config = BenchConfig(
        layers=["bare_asgi"],
        servers=["uvicorn", "scratch-asgi", "scratch-wsgi", "hypercorn", "waitress"],
        http="h11",
        loop="asyncio",
        floor=False,
    )
    flags = {t.server: dict(t.flags) for t in plan_targets(config)}
    assert flags["uvicorn"] == {"http": "h11", "loop": "asyncio"}
    assert flags["scratch-asgi"] == {"http": "h11", "loop": "asyncio"}
    assert flags["scratch-wsgi"] == {"http": "h11"}  # a thread pool, no event loop to choose
    assert flags["hypercorn"] == {"loop": "asyncio"}
    assert flags["waitress"] == {}


def test_a_one_second_bench_over_real_servers() -> None:
    doc = run_bench(
        BenchConfig(layers=["bare_asgi"], endpoints=["plaintext", "create"], repeat=1, duration=1), command="test"
    )
    assert report.validate(doc) == []
    rows = {(r["target"], r["endpoint"]): r for r in doc["results"]}
    assert set(rows) == {
        ("floor", "plaintext"),
        ("floor", "create"),
        ("uvicorn/bare_asgi", "plaintext"),
        ("uvicorn/bare_asgi", "create"),
    }
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0 and not row["flagged"]
    assert rows[("uvicorn/bare_asgi", "plaintext")]["ratio_to_bare"] == 1.0
    target = next(t for t in doc["targets"] if t["id"] == "uvicorn/bare_asgi")
    assert target["verification"]["method"] == "contract+quick" and target["verification"]["ok"]
    assert "--http httptools" in target["native_command"]


def test_the_command_writes_json_markdown_and_charts(tmp_path: Path) -> None:
    from layercake.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--layers",
            "bare_wsgi",
            "--endpoints",
            "plaintext",
            "--repeat",
            "1",
            "--no-floor",
            "--concurrency",
            "4,8",
            "--json",
            str(tmp_path / "r.json"),
            "--markdown",
            str(tmp_path / "r.md"),
            "--charts",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "gunicorn-gthread/bare_wsgi" in result.output and "estimated" in result.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert report.validate(doc) == [] and len(doc["results"]) == 2
    assert "| gunicorn-gthread/bare_wsgi | plaintext | 8 |" in (tmp_path / "r.md").read_text()
    assert {p.name for p in (tmp_path / "c").iterdir()} == {"ladder-rps.png", "ladder-latency.png", "concurrency.png"}
    again = CliRunner().invoke(cli, ["bench", "--compare", str(tmp_path / "r.json"), str(tmp_path / "r.json")])
    assert again.exit_code == 0 and "+0.0%" in again.output


def test_the_in_process_command(tmp_path: Path) -> None:
    from layercake.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--in-process",
            "--layers",
            "bare_asgi,starlette",
            "--endpoints",
            "json",
            "--seconds",
            "0.02",
            "--json",
            str(tmp_path / "i.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "i.json").read_text())
    assert report.validate(doc) == []
    assert [r["layer"] for r in doc["in_process"]] == ["bare_asgi", "starlette"]
    assert doc["in_process"][1]["ratio_to_bare"]["calls"] > 1


def test_user_mistakes_are_one_line() -> None:
    from layercake.cli import cli

    for args, message in (
        (["--endpoints", "nope"], "unknown endpoint 'nope'"),
        (["--concurrency", "a,b"], "comma-separated integers"),
        (["--layers", "rails"], "unknown layer 'rails'"),
        (["--duration", "0"], "whole seconds"),
        (["--baseline", "uvicorn/rails"], "unknown baseline target 'uvicorn/rails'"),
    ):
        result = CliRunner().invoke(cli, ["bench", *args])
        assert result.exit_code != 0 and message in result.output, result.output


def test_in_process_mistakes_are_one_line() -> None:
    from layercake.cli import cli

    # An unknown endpoint was a KeyError in every layer's subprocess, printed as "not
    # measured" with exit 0; the socket-only options were silently ignored.
    for args, message in (
        (["--in-process", "--endpoints", "nope"], "unknown endpoint 'nope'"),
        (["--in-process", "--layers", "bare_asgi,rails"], "unknown layer 'rails'"),
        (["--in-process", "--experiment", "slow"], "takes no --experiment"),
        (["--in-process", "--servers", "uvicorn"], "takes no --servers"),
        (["--in-process", "--seconds", "0"], "--seconds must be positive"),
        (["--bridged"], "--bridged goes with --in-process"),
    ):
        result = CliRunner().invoke(cli, ["bench", *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output and result.output.startswith("layercake: ")


def test_nothing_measured_is_exit_1_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    # A named server that is not installed, without the floor: the glance table indexed an
    # empty list (IndexError) and, with the floor, the run exited 0 having measured no layer.
    import dataclasses

    from layercake.cli import cli
    from servers import registry

    ghost = dataclasses.replace(registry.SERVERS["waitress"], requires=(registry.Requirement("no_such_xyz", "ghost"),))
    monkeypatch.setitem(registry.SERVERS, "waitress", ghost)
    for floor in ("--no-floor", "--floor"):
        result = CliRunner().invoke(
            cli,
            [
                "bench",
                "--layers",
                "bare_wsgi",
                "--servers",
                "waitress",
                floor,
                "--endpoints",
                "plaintext,json",
                "--repeat",
                "1",
                "--duration",
                "1",
            ],
        )
        assert result.exit_code == 1, result.output
        assert "did not start" in result.output and "no layer was measured" in result.output


def test_the_slow_experiment_records_its_theory(tmp_path: Path) -> None:
    from layercake.bench.experiments import run_slow, slow_config, thread_pool_ceiling

    assert thread_pool_ceiling(8) == 160.0
    config = slow_config(BenchConfig(layers=["bare_asgi"], concurrency=[4], repeat=1), sweep=True)
    assert config.endpoints == ["slow"] and config.duration == 2 and not config.floor
    doc = run_slow(config)
    assert report.validate(doc) == [] and doc["kind"] == "experiment:slow"
    (row,) = doc["results"]
    assert row["endpoint"] == "slow" and row["concurrency"] == 4 and not row["flagged"]
    assert row["latency_us"]["p50"]["median"] >= 50_000  # every request waited its 50 ms
    assert doc["settings"]["expected"]["wsgi_thread_pool_ceiling_rps"] == 160.0
    assert "Expected:" in report.markdown(doc)
    assert [p.name for p in report.charts(doc, tmp_path)] == []  # one concurrency: no curve to draw


def test_a_target_that_stops_answering_is_recorded_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from layercake.bench import runner
    from layercake.errors import LayercakeError

    real = runner.run_load

    def flaky(url: str, *args, **kwargs):
        if url == started["uvicorn/bare_asgi"]:
            raise LayercakeError("wrk failed (exit 1): unable to connect")
        return real(url, *args, **kwargs)

    started: dict[str, str] = {}
    real_start = runner.start_target

    def remember(target):
        server = real_start(target)
        started[target.id] = server.url
        return server

    monkeypatch.setattr(runner, "run_load", flaky)
    monkeypatch.setattr(runner, "start_target", remember)
    doc = run_bench(BenchConfig(layers=["bare_asgi"], endpoints=["plaintext"], repeat=2, duration=1))
    assert report.validate(doc) == []
    assert [r["target"] for r in doc["results"]] == ["floor"] and doc["results"][0]["rps"]["n"] == 2
    target = next(t for t in doc["targets"] if t["id"] == "uvicorn/bare_asgi")
    assert target["error"].startswith("stopped answering during the run")
    assert any("stopped answering" in n for n in report.verification_notes(doc))
