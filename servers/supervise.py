"""Process supervision: start a registry entry for real, know when it is ready, stop it whole.

Theory of operation
-------------------
Every server runs as a **subprocess** -- the very command a user would type, run with
this interpreter (``python -m gunicorn ...`` for ``gunicorn ...``), built from its
:class:`~servers.registry.ServerSpec`.  Running real servers in-process would share our
signal handlers, our event loop and our import state with theirs; a subprocess is what
production looks like, and it makes cleanup honest.  Each server is started in a new
session (``start_new_session=True``), so it leads its own process group: stopping it is
one ``killpg`` that reaches the master *and* every worker it forked (gunicorn's arbiter,
uvicorn's and granian's worker pools), first SIGTERM for a graceful stop, then SIGKILL
after a grace period.  Nothing is left behind -- the tests check ``/proc`` for orphans.

Readiness is the same for every server: poll a TCP connect to the port until it
succeeds, and watch for the process exiting first (a bad import, a bad flag), in which
case :class:`ServerStartError` carries the tail of its stderr.  Servers print different
banners, but every one of them accepts connections when it is ready.

Bridges: :func:`plan_server` swaps the app's import string for the bridge's
(``servers.bridges:wsgi_on_asgi`` or ``servers.bridges:asgi_on_wsgi``) and names the real
app in ``LAYERCAKE_BRIDGE_TARGET``; ``RunningServer.bridge`` says which way it went.

Ports are loopback by default; ``port=0`` picks a free one (bind to port 0, read the
number, close -- a tiny race that the readiness check would report as a start error, and
that :func:`start_server` retries once).
"""

from __future__ import annotations

import atexit
import errno
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import IO

from layercake.errors import LayercakeError
from layers import Layer, get_layer
from servers.registry import (
    PROJECT_ROOT,
    STOP_GRACE,
    Bridge,
    ServerOptions,
    ServerSpec,
    check_options,
    get_server,
)


class ServerStartError(LayercakeError):
    """The server exited or never listened; the message ends with the tail of its output."""

    def __init__(self, message: str, output: str = "") -> None:
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{message}\n--- server output (last lines) ---\n{tail}" if tail else message, 1)


# --------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_port_free(host: str, port: int) -> None:
    """Raise a :class:`LayercakeError` (exit 1) if something already listens on host:port.

    We bind with SO_REUSEADDR, as every server here does, so a port that only has
    connections in TIME_WAIT from a previous run counts as free -- the server would get it.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LayercakeError(
                    f"port {port} on {host} is already in use; stop whatever listens there "
                    f"or pick another with --port (--port 0 picks a free one)",
                    1,
                ) from None
            raise LayercakeError(f"cannot bind {host}:{port}: {exc.strerror}", 1) from None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# Running a server
# --------------------------------------------------------------------------------------

_RUNNING: weakref.WeakSet[RunningServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    # A safety net for a caller that forgot ``with``: never leave a server behind us.
    for server in list(_RUNNING):
        server.stop()


def stop_all(grace: float = STOP_GRACE) -> None:
    """Stop every server this process started, all at once (one thread each).

    For Ctrl-C in a command that runs servers from a thread pool (``layercake grid``):
    the pool's threads are busy talking to those servers, and stopping the servers is what
    ends their work quickly.
    """
    threads = [threading.Thread(target=server.stop, args=(grace,)) for server in list(_RUNNING)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class RunningServer:
    """A started server: its URL, the command it stands for, and how to stop it.

    A context manager: leaving the ``with`` block stops the server and every process in
    its group.  ``stop()`` may be called any number of times.
    """

    def __init__(
        self,
        spec: ServerSpec,
        layer: Layer,
        opts: ServerOptions,
        target: str,
        bridge: Bridge | None,
        env_overrides: dict[str, str],
    ) -> None:
        self.spec, self.layer, self.options = spec, layer, opts
        self.target, self.bridge = target, bridge
        self.host, self.port = opts.host, opts.port
        self.env_overrides = env_overrides
        self.argv = spec.argv(target, opts)
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in env_overrides.items())
        self.native_command = prefix + spec.native_command(target, opts)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __repr__(self) -> str:
        return f"<RunningServer {self.spec.name} {self.layer.name} {self.url} pid={self.pid}>"

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> RunningServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.options.env or {}), **self.env_overrides}
        # The project root first on the path, so "layers.flask.app:app" resolves in the child
        # whether or not the project is pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        if self.options.capture_output:
            # A file, not a pipe: nobody reads a pipe while the server runs, and a full pipe
            # would block the server's next log line.
            self._log = tempfile.TemporaryFile(prefix=f"layercake-{self.spec.name}-")
            out: IO[bytes] | None = self._log
        else:
            out = None
        self._proc = subprocess.Popen(
            self.argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # its own process group: one killpg reaches every worker
        )
        _RUNNING.add(self)
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"{self.spec.name} exited with status {self._proc.returncode} before listening "
                    f"(command: {self.native_command})",
                    self.output(),
                )
            if _accepts(self.host, self.port):
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"{self.spec.name} did not accept connections on {self.host}:{self.port} "
            f"within {self.options.startup_timeout:.0f} s (command: {self.native_command})",
            self.output(),
        )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server to exit by itself; its status, or None on timeout."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def process_group(self) -> list[int]:
        """Every live process in the server's group (Linux /proc), master first."""
        return process_group_members(self.pid) if self.pid else []

    def stop(self, grace: float = STOP_GRACE, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """SIGTERM the whole group, SIGKILL it after ``grace`` seconds; the master's status."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            pgid = proc.pid  # leader of its own session, so pgid == pid
            if proc.poll() is None:
                _killpg(pgid, sig)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    _killpg(pgid, signal.SIGKILL)
                    proc.wait()
            # Workers outlive a master killed the hard way; whatever is left of the group goes too,
            # and we wait (briefly) until the kernel has really taken them, so "stopped" means gone.
            _killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 2.0
            while process_group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)
            _RUNNING.discard(self)
            return proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group now, without waiting and without the lock.

        Safe from a signal handler that interrupted :meth:`stop` in the same thread (the
        second Ctrl-C of ``layercake serve``): ``stop`` then sees the master gone and
        finishes at once.
        """
        if self._proc is not None:
            _killpg(self._proc.pid, signal.SIGKILL)

    def output(self) -> str:
        """What the server printed so far (only when ``capture_output``)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        data = self._log.read()
        self._log.seek(0, os.SEEK_END)
        return data.decode("utf-8", "replace")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def process_group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid``, from /proc (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parens, so split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members, key=lambda pid: pid != pgid)


def plan_server(server: str | ServerSpec, layer: str | Layer, opts: ServerOptions | None = None) -> RunningServer:
    """Everything :func:`start_server` decides, without starting: checks, port, command.

    Raises :class:`UnknownName`, :class:`MissingPackage`, and :class:`LayercakeError`
    for an unsupported flag (exit 2) or a port in use (exit 1).
    """
    spec = server if isinstance(server, ServerSpec) else get_server(server)
    lay = layer if isinstance(layer, Layer) else get_layer(layer)
    opts = opts or ServerOptions()
    bridge = spec.bridge_for(lay.interface)
    check_options(spec, opts, bridge)
    spec.require(opts)
    if opts.port == 0:
        opts = replace(opts, port=free_port(opts.host))
    else:
        ensure_port_free(opts.host, opts.port)
    target = opts.app_target or lay.target
    env_overrides: dict[str, str] = {}
    if bridge is not None:
        from servers import bridges  # noqa: PLC0415 -- a2wsgi only when a bridge is in play

        env_overrides[bridges.ENV_FOR[bridge]] = target
        if bridge == "wsgi->asgi" and opts.threads:
            env_overrides[bridges.THREADS_ENV] = str(opts.threads)
            opts = replace(opts, threads=None)  # consumed by the bridge, not the server
        target = bridges.target_for(bridge)
    return RunningServer(spec, lay, opts, target, bridge, env_overrides)


def start_server(server: str | ServerSpec, layer: str | Layer, opts: ServerOptions | None = None) -> RunningServer:
    """Start ``layer`` on ``server`` and return once it accepts connections.

    Use it as a context manager so the server (and all its workers) stop at the end::

        with start_server("uvicorn", "fastapi", ServerOptions()) as srv:
            httpx.get(srv.url + "/json")
    """
    opts = opts or ServerOptions()
    try:
        return plan_server(server, layer, opts).start()
    except ServerStartError as exc:
        # With port=0 the free port is found by binding and closing, and another process can
        # take it before the server binds (the grid starts servers two at a time).  That race
        # deserves one more try on a new port; any other start failure is the server's.
        if opts.port != 0 or "in use" not in exc.output.lower():
            raise
        return plan_server(server, layer, opts).start()
