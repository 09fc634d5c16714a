"""Every demo runs as a newcomer runs it (``python demos/NN_name.py``), briefly, and ends
cleanly -- by itself with ``--seconds``, or on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers.supervise import process_group_members

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"

RUNS = {
    "01_bare_wsgi.py": (["--port", "0", "--seconds", "0.3"], "native command: python -m servers.launch wsgiref"),
    "02_werkzeug.py": (["--port", "0", "--seconds", "0.3"], "curl -sN"),
    "03_flask.py": (["--port", "0", "--seconds", "0.3"], "native command: gunicorn -k gthread"),
    "04_bare_asgi.py": (["--port", "0", "--seconds", "0.3"], "ws://"),
    "05_starlette.py": (["--port", "0", "--seconds", "0.3"], "native command: hypercorn"),
    "06_fastapi.py": (["--port", "0", "--seconds", "0.3"], "/docs"),
    "07_three_servers.py": (["--seconds", "0"], "close-delimited"),
    "08_slow_concurrency.py": (["--requests", "4", "--ms", "20"], "overlap"),
    "09_bridge.py": (["--seconds", "0"], "LAYERCAKE_BRIDGE_LIFESPAN=off: /health"),
}


def test_every_demo_is_covered() -> None:
    assert sorted(p.name for p in DEMOS.glob("[0-9][0-9]_*.py")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_demo_runs_briefly(name: str) -> None:
    args, expect = RUNS[name]
    proc = subprocess.run(
        [sys.executable, str(DEMOS / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert expect in out and "Traceback" not in out


def test_demo_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(DEMOS / "03_flask.py"), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    pid = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if m := re.search(r"\(pid (\d+)", line):
                pid = int(m.group(1))
            if not line or "/health" in line:  # the last curl line: the server is up
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "stopped" in out
        assert pid and process_group_members(pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid and process_group_members(pid):  # never leave the demo's server behind
            os.killpg(pid, signal.SIGKILL)
