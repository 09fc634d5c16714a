"""The minimal install: ``pip install -e .`` alone, without the ``servers`` extra.

The README says that is enough for the layers, our two servers and uvicorn; every command
must then run, and show the servers it lacks as "not installed" with the pip extra that
brings them -- not end in a traceback (it did: ``find_spec("gunicorn.workers.gasgi")``
raises when gunicorn is absent).

The virtual environment is real (``python -m venv``, no system site-packages, so nothing
of the main environment leaks in) and is installed the way a user installs it, with pip
and its cache; no ``--no-deps``, which would hide a missing dependency.  It is made once
and kept in the temporary directory, keyed by this checkout and its dependency list, so
later sessions reuse it.  If pip cannot install (no network and no cache), the test is
skipped and says why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def minimal_venv() -> Path:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(str(ROOT).encode() + pyproject + sys.version.encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir()) / f"layercake-minimal-venv-{key}"
    ready = venv / "layercake-installed"
    if ready.exists():
        return venv
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-e", str(ROOT)],
            capture_output=True,
            text=True,
            timeout=1500,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("pip did not finish installing the minimal set within 25 minutes")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        pytest.skip(f"pip could not install `pip install -e .` (offline without a cache?): {tail}")
    ready.write_text("ok\n")
    return venv


def _words(text: str) -> str:
    """The text with its line breaks and runs of spaces as single spaces (it is wrapped at 80)."""
    return " ".join(text.split())


def _run(venv: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("PYTHONPATH", None)
    # from a directory outside the checkout, as a user would, so only the venv's packages count
    return subprocess.run(
        [str(venv / "bin" / "layercake"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tempfile.gettempdir(),
    )


@pytest.mark.timeout(1800)  # the first session pays for the install (pip's cache makes it a minute or two)
def test_every_command_runs_without_the_servers_extra(minimal_venv: Path) -> None:
    python = str(minimal_venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import gunicorn"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "gunicorn is importable: this is not the minimal install"

    hint = "pip install -e '.[servers]'"
    commands = {
        "servers": ["servers", "--no-notes"],
        "grid": ["grid", "--layers", "bare_wsgi", "--servers", "scratch-wsgi,gunicorn-sync,gunicorn-asgi"],
        # --no-websocket: Autobahn's column runs its suite on every ASGI server (over a minute here); it has its own
        # test (test_autobahn.py), and what this test asks is that the minimal install runs the probe at all.
        "probe": ["probe", "--servers", "all", "--case", "valid/get", "--no-websocket"],
        "bench": ["bench", "--servers", "waitress", "--layers", "bare_wsgi", "--no-floor"],
        "layers": ["layers"],
        "verify": ["verify", "bare_asgi", "--server", "uvicorn"],
        "trace": ["trace", "bare_wsgi", "/json"],
        "loc": ["loc", "--no-measure"],
        "lifespan": ["lifespan", "starlette", "--server", "uvicorn"],
    }
    # Two at a time (the machine has two cores; every command mostly waits for its imports and servers): the
    # commands share nothing -- each server they start takes a free port.
    with ThreadPoolExecutor(2) as pool:
        ran = dict(zip(commands, pool.map(lambda args: _run(minimal_venv, *args), commands.values()), strict=True))

    servers = ran.pop("servers")
    assert servers.returncode == 0, servers.stderr
    assert "not installed" in servers.stdout and hint in _words(servers.stdout) and "gunicorn-asgi" in servers.stdout

    grid = ran.pop("grid")
    assert grid.returncode == 0, grid.stdout + grid.stderr
    assert "not installed: gunicorn-sync, gunicorn-asgi" in _words(grid.stdout) and hint in _words(grid.stdout)

    probe_all = ran.pop("probe")
    assert "Traceback" not in probe_all.stdout + probe_all.stderr
    assert "waitress: not installed" in probe_all.stdout and hint in _words(probe_all.stdout)
    assert "scratch-wsgi (bare_wsgi): 1/1 as expected" in probe_all.stdout

    bench = ran.pop("bench")
    assert bench.returncode == 1 and "Traceback" not in bench.stderr, bench.stdout + bench.stderr
    assert "not installed" in bench.stdout + bench.stderr

    for name, done in ran.items():
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"{commands[name]}: {done.stdout}{done.stderr}"
