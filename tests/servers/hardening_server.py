"""Start a scratch server on the hardening test apps, as a user would: ``python -m
servers.scratch_wsgi MODULE:ATTR --port 0 ...``, waiting for its ``layercake: serving on
http://HOST:PORT`` line.  Its stderr is drained by a thread (a full pipe would block the
server's next log line) and kept for the tests to search."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = {
    "scratch-wsgi": ("servers.scratch_wsgi", "tests.servers.hardening_apps:wsgi_app"),
    "scratch-asgi": ("servers.scratch_asgi", "tests.servers.hardening_apps:asgi_app"),
}
_SERVING = re.compile(r"layercake: serving on http://([0-9.]+):(\d+)")


@dataclass
class Served:
    host: str
    port: int
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return "".join(self.lines)


def require(server: str) -> None:
    if importlib.util.find_spec(SCRATCH[server][0]) is None:
        pytest.skip(f"{server} not written yet")


@contextmanager
def scratch(server: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``server`` is a SCRATCH name, or ``NAME+httptools``: the same server on the C parser (and scratch-asgi on
    uvloop too: the fast pair)."""
    server, _, fast = server.partition("+")
    if fast:
        pytest.importorskip("httptools", reason="--http httptools needs the servers extra")
        flags = ("--http", fast, *(("--loop", "uvloop") if server == "scratch-asgi" else ()), *flags)
    require(server)
    module, app = SCRATCH[server]
    proc = subprocess.Popen(
        [sys.executable, "-m", module, app, "--port", "0", "--no-access-log", *flags],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    match = None
    while match is None:
        line = proc.stderr.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{server} did not start:\n{''.join(lines)}{proc.stderr.read()}")
        lines.append(line)
        match = _SERVING.search(line)
    drain = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    drain.start()
    served = Served(match[1], int(match[2]), proc, lines)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drain.join(5)
