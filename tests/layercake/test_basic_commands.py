"""The first commands a newcomer runs -- layers, verify, tour -- as a user runs them:
the real console script in a subprocess, so exit statuses and stderr are the real ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from layercake.contract import cases_for
from layers import LAYERS


def layercake(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layercake", *args], capture_output=True, text=True, timeout=timeout)


def test_layers_lists_the_ladder() -> None:
    done = layercake("layers")
    assert done.returncode == 0, done.stderr
    for name in LAYERS:
        assert name in done.stdout


@pytest.mark.parametrize(
    ("args", "word"), [(["verify", "nope"], "layer"), (["verify", "flask", "--server", "nope"], "server")]
)
def test_an_unknown_name_gets_the_choices_not_a_traceback(args: list[str], word: str) -> None:
    done = layercake(*args)
    assert done.returncode == 2
    assert f"unknown {word} 'nope'; choose one of:" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_output_file_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    # --json under a regular file: once a traceback, then a line after the work; now refused
    # before the work starts (layercake.outputs), as a bad argument (exit 2).
    (tmp_path / "plain").write_text("")
    done = layercake("verify", "bare_wsgi", "--json", str(tmp_path / "plain" / "out.json"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "contract cases" not in done.stdout
    path = tmp_path / "plain" / "out.json"
    assert done.stderr.strip() == f"layercake: {path}: {tmp_path / 'plain'} is a file, not a directory"


def test_verify_over_a_real_server() -> None:
    done = layercake("verify", "flask", "--server", "scratch-wsgi")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "23/23 contract cases passed" in done.stdout


def test_tour_verifies_and_measures_every_layer() -> None:
    done = layercake("tour", "--seconds", "0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    for name, layer in LAYERS.items():
        total = 24 if layer.interface == "asgi" else 23
        gaps = [c.id for c in cases_for(layer) if c.id in layer.gaps]  # fail by design, shown as known
        assert f"{name:<10} {total - len(gaps)}/{total} cases" in done.stdout
        for case_id in gaps:
            assert f"{name}: {case_id}: known gap" in done.stdout
    assert "layercake trace" in done.stdout.splitlines()[-3]
