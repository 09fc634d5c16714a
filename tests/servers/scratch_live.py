"""Helpers for the live scratch-server tests: raw sockets, a server subprocess that is always stopped, a bounded
wait, and ``SCRATCH_SERVERS`` -- both scratch servers, each with the test app of its interface, for the tests that
hold for both (tests/servers/test_scratch_common.py)."""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from servers.registry import get_server
from tests.servers import scratch_apps

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer.  A wait, not a timing
    assertion: the tests use it to know that something has happened before they go on."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port  # type: ignore[return-value]


class Client:
    """A raw socket with a receive buffer, so pipelined responses can be read one at a time."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address(url), timeout=timeout)
        self.buf = b""

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        if self.buf:
            data, self.buf = self.buf[:size], self.buf[size:]
            return data
        return self.sock.recv(size)

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> bool:
        try:
            piece = self.sock.recv(65536)
        except ConnectionResetError:
            piece = b""
        self.buf += piece
        return bool(piece)

    def read_until_closed(self, limit: int = 1 << 22) -> bytes:
        while len(self.buf) < limit and self._more():
            pass
        data, self.buf = self.buf, b""
        return data

    def read_response(self) -> bytes:
        """One response, whose body has a Content-Length (enough for these tests); b"" if the server closed."""
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                data, self.buf = self.buf, b""
                return data
        end = self.buf.index(b"\r\n\r\n") + 4
        match = re.search(rb"(?i)content-length: *(\d+)", self.buf[:end])
        length = int(match.group(1)) if match else 0
        while len(self.buf) < end + length and self._more():
            pass
        data, self.buf = self.buf[: end + length], self.buf[end + length :]
        return data


def connect(url: str, timeout: float = 10.0) -> Client:
    return Client(url, timeout)


def read_until_closed(client: Client) -> bytes:
    return client.read_until_closed()


def read_response(client: Client) -> bytes:
    return client.read_response()


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr = ""

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr += err
        return self.proc.returncode


@contextmanager
def server_process(module: str, target: str, *args: str, notes: Path | None = None) -> Iterator[ServerProcess]:
    """Run ``python -m module target --port 0 ...``; wait for the serving line; always stop it.  ``notes``: a file
    the test apps append to (``SCRATCH_TEST_NOTES``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if notes is not None:
        env["SCRATCH_TEST_NOTES"] = str(notes)
    proc = subprocess.Popen(
        [sys.executable, "-m", module, target, "--port", "0", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    url = ""
    seen = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        match = re.match(r"layercake: serving on (http://\S+)$", line.strip())
        if match:
            url = match.group(1)
            break
    server = ServerProcess(proc, url)
    server.stderr = seen
    try:
        yield server
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


@dataclass(frozen=True)
class ScratchServer:
    """One scratch server as the tests that hold for both see it: its registry name (the test id), the module
    ``python -m`` runs, and the scratch_apps app of its interface -- the object for an in-process server, the
    ``MODULE:ATTR`` target for a subprocess."""

    name: str
    module: str
    app: Any
    target: str

    def running(self, **options: Any) -> AbstractContextManager[str]:
        """The server module's own in-process ``running(app, **options)`` on this server's test app; yields the
        base URL."""
        return importlib.import_module(self.module).running(self.app, **options)

    def process(self, *args: str, notes: Path | None = None) -> AbstractContextManager[ServerProcess]:
        """``server_process`` for this server's module on its test app target."""
        return server_process(self.module, self.target, *args, notes=notes)


def scratch_server(name: str) -> ScratchServer:
    """The ScratchServer for a registry name: the module from its ServerSpec, the app named after its interface."""
    spec = get_server(name)
    attr = f"{spec.interface}_app"
    return ScratchServer(name, spec.module, getattr(scratch_apps, attr), f"tests.servers.scratch_apps:{attr}")


SCRATCH_SERVERS = [scratch_server(name) for name in ("scratch-wsgi", "scratch-asgi")]
