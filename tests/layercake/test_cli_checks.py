"""What the CLI checks before it starts anything: option values against what the servers
support, output paths; and what ``verify`` makes of the gaps the registry already knows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from layercake.cli import cli
from layercake.outputs import BadOutput, prepare
from servers.registry import findable

ROOT = Path(__file__).resolve().parents[2]


def layercake(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layercake", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


# --- verify and the registry's known gaps ----------------------------------------------------------------------------


def test_verify_reports_a_known_gap_and_passes(tmp_path: Path) -> None:
    # flask on uvicorn goes through a2wsgi, which refuses a WebSocket with 403 before the WSGI
    # app (which would say 404) is asked: the registry knows, so does verify.
    out = tmp_path / "v.json"
    done = layercake("verify", "flask", "--server", "uvicorn", "--group", "websocket", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "known gap (wsgi->asgi bridge:" in done.stdout and "FAIL" not in done.stdout
    assert "1 known gap(s)" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert [r["known_gap"] for r in results if not r["ok"]] and all(r.get("known_gap") for r in results if not r["ok"])


def test_verify_strict_fails_on_known_gaps() -> None:
    done = layercake("verify", "flask", "--server", "uvicorn", "--group", "websocket", "--strict")
    assert done.returncode == 1
    assert "known gap" in done.stdout and done.stderr.strip().endswith("(--strict)")


# --- option values checked against the servers, before anything starts ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--http", "bogus", "--loop", "bogus"], "--http 'bogus' is not a choice of any server in this run"),
        (["--servers", "uvicorn", "--loop", "trio"], "--loop 'trio' is not a choice of any server in this run"),
        (["--servers", "waitress", "--workers", "2"], "waitress runs a single process and has no --workers"),
        (
            ["--servers", "waitress", "--http", "h11"],
            "none of this run's servers (waitress) has a --http choice",
        ),
        (["--in-process", "--http", "h11"], "--in-process measures without sockets and takes no --http"),
        (["--in-process", "--workers", "2"], "takes no --workers"),
    ],
    ids=[
        "bogus-http-and-loop",
        "bogus-loop",
        "workers-on-waitress",
        "http-on-fixed-parser",
        "in-process-http",
        "in-process-workers",
    ],
)
def test_bench_refuses_options_no_server_takes(args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "plan:" not in result.output and "in-process:" not in result.output  # nothing started
    assert len(result.output.strip().splitlines()) == 1


def test_bench_takes_a_value_one_server_of_the_run_offers() -> None:
    from layercake.bench.runner import BenchConfig, plan_targets
    from layercake.commands.bench import check_server_flags

    # --http h11 applies to uvicorn and leaves scratch-asgi (no choice) alone: no error.
    targets = plan_targets(BenchConfig(layers=["bare_asgi"], servers=["scratch-asgi", "uvicorn"]))
    check_server_flags(targets, "h11", "asyncio", None)


# --- output paths, checked first and the same way in every command ------------------------------------------------------


def test_prepare_creates_missing_directories_and_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    prepare(tmp_path / "a" / "b" / "out.json", None, directories=(tmp_path / "charts",))
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "charts").is_dir()
    assert not (tmp_path / "a" / "b" / "out.json").exists()  # nothing written before the work
    (tmp_path / "file").write_text("")
    with pytest.raises(BadOutput, match="is a file, not a directory"):
        prepare(tmp_path / "file" / "out.json")
    with pytest.raises(BadOutput, match="is a directory"):
        prepare(tmp_path / "a")


OUTPUTS = {
    "verify": ["verify", "bare_wsgi", "--json", "{bad}"],
    "grid": ["grid", "--layers", "bare_wsgi", "--servers", "scratch-wsgi", "--markdown", "{bad}"],
    "trace": ["trace", "bare_wsgi", "/json", "--html", "{bad}"],
    "scope-diff": ["scope-diff", "bare_asgi", "/inspect", "--servers", "scratch-asgi,uvicorn", "--json", "{bad}"],
    "lifespan": ["lifespan", "bare_asgi", "--json", "{bad}"],
    "probe": ["probe", "scratch-wsgi", "--case", "valid/get", "--json", "{bad}"],
    "soak": ["soak", "bare_wsgi", "--duration", "1", "--json", "{bad}"],
    "bench": ["bench", "--in-process", "--layers", "bare_wsgi", "--markdown", "{bad}"],
    "bench-charts": ["bench", "--in-process", "--layers", "bare_wsgi", "--charts", "{bad}"],
}


@pytest.mark.parametrize("args", list(OUTPUTS.values()), ids=list(OUTPUTS))
def test_every_command_refuses_an_unwritable_output_before_the_work(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "plain").write_text("")
    bad = str(tmp_path / "plain" / "out")
    result = CliRunner().invoke(cli, [a.replace("{bad}", bad) for a in args])
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip().splitlines()[-1] == f"layercake: {bad}: {tmp_path / 'plain'} is a file, not a directory"
    )
    # refused before anything ran: no results, no server banner, no progress
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_missing_output_directory_is_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "verify.json"
    result = CliRunner().invoke(cli, ["verify", "bare_wsgi", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["layer"] == "bare_wsgi"


# --- the registry on a minimal install ------------------------------------------------------------------------------------


def test_findable_is_false_for_a_submodule_of_a_missing_package() -> None:
    # find_spec("gunicorn.workers.gasgi") raised ModuleNotFoundError without gunicorn, which
    # crashed `layercake servers`, `grid` and `probe --servers all` on `pip install -e .`.
    assert findable("json") and findable("json.decoder")
    assert not findable("no_such_package_here") and not findable("no_such_package_here.workers.gasgi")
