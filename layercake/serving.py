"""Serving a layer in the foreground until Ctrl-C: what ``layercake serve`` and the demos share.

Theory of operation
-------------------
:func:`serve` plans the server first (unknown names, unsupported flags, a port in use
and a missing package all fail here, before anything starts), prints the native command
it stands for, starts it with its output going straight to the terminal, prints the URL
and a few curl lines, and waits.  Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal
closing) all end the wait the same way: the server's whole process group gets SIGTERM,
and SIGKILL after a grace period, so no worker outlives the command.

A second Ctrl-C (or SIGTERM/SIGHUP) during that graceful stop kills the group at once --
what uvicorn's and gunicorn's own second Ctrl-C do -- and the last line says which way it
went: stopped, killed after the grace period, or force-stopped with requests cut off.
The second signal must not *raise* (a KeyboardInterrupt inside the stop's wait used to
abort the stop itself, leaving the server running after "stopped" was printed), so during
the stop the handlers only send SIGKILL and note it.

The "serving on URL" line is printed once: our own servers print it themselves (the line
scripts wait for, and perhaps after ours: their workers start after the port accepts), so
for them we add only the pid and how to stop it.

Why convert signals: the server runs in its own session (see ``servers.registry``), so
the terminal's Ctrl-C reaches only us; and a SIGTERM to us would otherwise kill Python
without running the ``finally`` that stops the server.  Turning SIGTERM and SIGHUP into
``KeyboardInterrupt`` routes every way of being stopped through that one ``finally``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from layercake.errors import LayercakeError
from layers import Layer, get_layer
from servers.registry import STOP_GRACE, ServerOptions, default_server
from servers.supervise import RunningServer, plan_server

#: Servers (by the module run) that print "serving on URL" themselves once listening.
ANNOUNCES_ITSELF = frozenset({"servers.scratch_wsgi", "servers.scratch_asgi", "servers.launch"})
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def curl_lines(url: str, layer: Layer) -> list[str]:
    """A few requests worth trying on ``layer`` at ``url``."""
    if not getattr(layer, "contract", True):  # a user's own app (--app): we know none of its routes
        return [f"curl -i {url}/"]
    lines = [
        f"curl -i {url}/plaintext",
        f"curl -s {url}/items/1",
        f"curl -s '{url}/items?limit=3&offset=10'",
        f'curl -s -X POST {url}/items -H \'Content-Type: application/json\' -d \'{{"name": "kettle", "price": 12.5}}\'',
        f"curl -sN '{url}/stream?n=5'",
        f"curl -s {url}/inspect | python -m json.tool",
        f"curl -s {url}/health",
    ]
    if layer.interface == "asgi":
        host_port = url.removeprefix("http://")
        lines.append(f"python -m websockets ws://{host_port}/ws   # type a line, see it echoed")
    if layer.docs:
        lines.append(f"open {url}/docs   # FastAPI's free OpenAPI UI")
    return lines


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt.

    SIGINT is set too because Python only installs its own Ctrl-C handler when SIGINT is not
    ignored at startup, and a shell script's ``layercake serve ... &`` starts with SIGINT
    ignored: ``kill -INT`` would then do nothing, where uvicorn and gunicorn (which set
    their handlers unconditionally) stop.
    """
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_server(srv: RunningServer, grace: float = STOP_GRACE) -> str:
    """Stop ``srv`` gracefully; a stop signal meanwhile kills its group at once.

    Returns the one truthful line to print: how it stopped, and a warning if any process
    of the group were still alive afterwards (which ``stop`` exists to prevent).
    """
    forced: list[str] = []

    def force(signum: int, frame: object) -> None:
        if not forced:
            forced.append(signal.Signals(signum).name)
        srv.kill()

    previous = {sig: signal.signal(sig, force) for sig in _STOP_SIGNALS}
    try:
        status = srv.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    left = srv.process_group()
    if forced:
        line = (
            f"layercake: force-stopped {srv.name}: a second {forced[0]} sent SIGKILL to its whole process group "
            "(requests in flight were cut off)"
        )
    elif status == -signal.SIGKILL:
        line = f"layercake: {srv.name} did not stop within {grace:g} s of SIGTERM; killed it and all its workers"
    else:
        line = f"layercake: stopped {srv.name} and all its workers"
    if left:
        line += f"; WARNING: processes {', '.join(map(str, left))} of its group are still alive"
    return line


def serve(
    layer_name: str | Layer,
    server: str | None,
    opts: ServerOptions,
    echo: Callable[[str], Any] = print,
    seconds: float | None = None,
) -> int:
    """Serve until interrupted (or for ``seconds``); returns the exit status for the shell."""
    layer = layer_name if isinstance(layer_name, Layer) else get_layer(layer_name)
    planned: RunningServer = plan_server(server or default_server(layer.interface), layer, opts)
    echo(
        f"layercake: {layer.name} ({layer.interface}) on {planned.name}"
        + (f" through the {planned.bridge} bridge" if planned.bridge else "")
    )
    echo(f"native command: {planned.native_command}")

    def say(line: str) -> None:
        try:
            echo(line)
        except OSError:  # the terminal is gone (SIGHUP): stopping the server matters more
            pass

    with signals_interrupt():
        srv: RunningServer | None = None
        try:
            srv = planned.start()
            how = "Ctrl-C stops it and every worker; a second Ctrl-C kills them at once"
            if planned.spec.module in ANNOUNCES_ITSELF:
                say(f"layercake: {srv.url} is pid {srv.pid} (and its workers): {how}")
            else:
                say(f"layercake: serving on {srv.url}  (pid {srv.pid}; {how})")
            say("try:")
            for line in curl_lines(srv.url, layer):
                say(f"  {line}")
            status = srv.wait(seconds)
            if status is not None:
                raise LayercakeError(f"{srv.name} exited by itself with status {status}", 1)
            say(f"layercake: {seconds:g} s are up; stopping the server and all its workers")
        except KeyboardInterrupt:
            if srv is not None:
                say(
                    f"\nlayercake: stopping {srv.name}: SIGTERM to its process group, up to {STOP_GRACE:g} s "
                    "for requests in flight (Ctrl-C again: at once)"
                )
            else:
                say(f"\nlayercake: interrupted while {planned.name} was starting")
        finally:
            # ``planned`` is the server (start() returns it): stopped even when interrupted mid-start,
            # where start() may have been cut short in its own clean-up by a second signal.
            if planned.pid is not None:
                say(stop_server(planned))
    return 0
