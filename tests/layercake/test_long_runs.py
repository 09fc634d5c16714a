"""Long runs: progress when piped, and Ctrl-C keeps what was measured (exit 130).

The progress helper is checked on its own; then ``grid``, ``probe``, ``soak`` and
``bench`` are started as a user starts them, interrupted the way a terminal interrupts
(SIGINT to the command's process group, while real servers run), and their JSON and
Markdown are read back: marked partial, holding the steps that finished.  No timing is
asserted beyond "it exited" (bounded waits only).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from layercake.progress import Interrupted, Steps, clock
from servers.supervise import process_group_members

ROOT = Path(__file__).resolve().parents[2]


def test_clock() -> None:
    assert [clock(0), clock(7.4), clock(62), clock(3723)] == ["0:00", "0:07", "1:02", "1:02:03"]


def test_steps_print_a_line_per_step_when_piped_and_keep_a_ctrl_c() -> None:
    console = Console(record=True, width=80, file=open(os.devnull, "w"))  # noqa: SIM115
    steps = Steps(3, "pairs", console=console, live=False)
    with steps:
        steps.advance("first done")
        steps.advance("second done")
        raise KeyboardInterrupt
    text = console.export_text()
    assert "[1/3]" in text and "first done" in text and "[2/3]" in text and "left" in text
    assert "interrupted after 2 of 3 pairs" in text
    assert steps.interrupted and steps.partial() == {
        "interrupted": "Ctrl-C",
        "done": 2,
        "total": 3,
        "what": "pairs",
        "elapsed_s": steps.partial()["elapsed_s"],  # type: ignore[index]
    }
    doc = steps.mark({"results": []})
    assert doc["partial"]["done"] == 2
    assert steps.markdown_note().startswith("> **Partial results**: interrupted (Ctrl-C) after 2 of 3 pairs")
    with pytest.raises(Interrupted) as raised:
        steps.finish("kept in x.json")
    assert raised.value.exit_code == 130 and "kept in x.json" in raised.value.message


def test_steps_that_ran_to_the_end_mark_nothing() -> None:
    steps = Steps(1, console=Console(file=open(os.devnull, "w")), live=False)  # noqa: SIM115
    with steps:
        steps.advance("done")
    assert not steps.interrupted and steps.partial() is None and steps.markdown_note() == ""
    assert steps.mark({}) == {}
    steps.finish()  # no exception


def _ctrl_c(args: list[str], when: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run ``layercake ARGS``, wait for ``when`` in its output, then Ctrl-C it as a terminal does.

    The command runs in its own process group with SIGINT at its default (a shell's
    background job would have it ignored), and the SIGINT goes to the whole group.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "layercake", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if when in line:
                os.killpg(proc.pid, signal.SIGINT)
                break
        else:
            raise AssertionError(f"never saw {when!r}:\n" + "".join(seen))
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + out


def _no_server_left() -> None:
    # Every server our commands start leads its own process group; none may outlive them.
    mine = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    left = []
    for pid in mine:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and str(ROOT) in cmdline and process_group_members(pid):
            left.append(cmdline)
    assert not left, f"orphaned: {left}"


def test_grid_ctrl_c_keeps_the_pairs_done(tmp_path: Path) -> None:
    # waitress spends two 10 s timeouts per pair: the interrupt lands while a pair is running.
    out_json, out_md = tmp_path / "new" / "grid.json", tmp_path / "new" / "grid.md"
    code, output = _ctrl_c(
        [
            "grid",
            "--layers",
            "bare_wsgi,werkzeug",
            "--servers",
            "scratch-wsgi,waitress",
            "--jobs",
            "1",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        when="[1/4]",
    )
    assert code == 130, output
    assert "Aborted" not in output and "Traceback" not in output
    assert "interrupted after 1 of 4 pairs" in output
    doc = json.loads(out_json.read_text())
    assert doc["partial"]["interrupted"] == "Ctrl-C" and doc["partial"]["total"] == 4
    assert [(c["layer"], c["server"]) for c in doc["cells"]] == [("bare_wsgi", "scratch-wsgi")]
    assert "Partial results" in out_md.read_text()
    _no_server_left()


def test_probe_ctrl_c_keeps_the_cases_done(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "probe.json", tmp_path / "probe.md"
    code, output = _ctrl_c(
        [
            "probe",
            "scratch-wsgi",
            "waitress",
            "--case",
            "smuggling",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        when="scratch-wsgi: ",
    )
    assert code == 130, output
    assert "Traceback" not in output
    doc = json.loads(out_json.read_text())
    assert doc["partial"]["interrupted"] == "Ctrl-C"
    probes = {p["server"]: p for p in doc["probes"]}
    assert len(probes["scratch-wsgi"]["results"]) == 25  # the first server finished
    assert "Partial results" in out_md.read_text() and "| scratch-wsgi |" in out_md.read_text()
    _no_server_left()


def test_soak_ctrl_c_keeps_the_load_so_far(tmp_path: Path) -> None:
    out_json = tmp_path / "soak.json"
    code, output = _ctrl_c(
        ["soak", "bare_wsgi", "--duration", "60", "--concurrency", "8", "--interval", "0.5", "--json", str(out_json)],
        when="requests, RSS",
    )
    assert code == 130, output
    assert "soak passed" not in output and "soak interrupted" in output
    doc = json.loads(out_json.read_text())
    assert doc["interrupted"] and doc["partial"]["interrupted"] == "Ctrl-C"
    assert doc["requests"] > 0 and doc["elapsed"] < 60
    _no_server_left()


def test_bench_in_process_ctrl_c_keeps_the_layers_measured(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    code, output = _ctrl_c(
        [
            "bench",
            "--in-process",
            "--endpoints",
            "json",
            "--seconds",
            "1",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        when="[2/",  # the first layer is measured, the second being measured
    )
    assert code == 130, output
    doc = json.loads(out_json.read_text())
    assert doc["partial"]["interrupted"] == "Ctrl-C"
    assert {r["layer"] for r in doc["in_process"]} >= {"bare_wsgi"}
    assert out_md.read_text().startswith("> **Partial results**")


def test_ctrl_c_elsewhere_is_exit_130_not_aborted() -> None:
    code, output = _ctrl_c(["serve", "bare_wsgi", "--port", "0", "--no-access-log"], when="/health")
    assert code == 0, output  # serve: Ctrl-C is how it is meant to end
    code, output = _ctrl_c(["verify", "bare_asgi", "--server", "scratch-asgi"], when="pass")
    assert code == 130 and "Aborted" not in output and "layercake: interrupted" in output, output
    _no_server_left()


def test_run_bench_keeps_the_runs_measured_before_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    # The socket benchmark, interrupted on its third run: the document holds the first two,
    # summarised, and says it is partial.  (The load itself is stood in for: this checks what
    # the runner keeps, not what wrk measures.)
    from layercake.bench import runner
    from layercake.bench.loadgen import LoadResult

    calls = []

    def load(*args: object, **kwargs: object) -> LoadResult:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return LoadResult("builtin", 1000, 1.0, 100_000, {}, {"p50": 100.0, "p99": 900.0})

    monkeypatch.setattr(runner, "run_load", load)
    config = runner.BenchConfig(
        layers=["bare_asgi"], servers=["scratch-asgi"], endpoints=["plaintext"], repeat=3, floor=False, pin=False
    )
    doc = runner.run_bench(config, command="test")
    assert doc["partial"] == {"interrupted": "Ctrl-C", "done": 2, "total": 3, "what": "runs"}
    assert len(doc["runs"]) == 2 and doc["results"][0]["target"] == "scratch-asgi/bare_asgi"
    _no_server_left()
