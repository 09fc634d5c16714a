"""Serving a layer in the foreground until Ctrl-C: what ``layercake serve`` and the demos share.

Theory of operation
-------------------
:func:`serve` plans the server first (unknown names, unsupported flags, a port in use
and a missing package all fail here, before anything starts), prints the native command
it stands for, starts it with its output going straight to the terminal, prints the URL
and a few curl lines, and waits.  Ctrl-C (SIGINT), SIGTERM and SIGHUP all end the wait the
same way: the server's whole process group gets SIGTERM, then SIGKILL after a grace
period, so no worker outlives the command.

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
from servers.registry import ServerOptions, default_server
from servers.supervise import RunningServer, plan_server


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
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    with signals_interrupt():
        try:
            with planned.start() as srv:
                echo(f"serving on {srv.url}  (pid {srv.pid}; Ctrl-C stops it and every worker)")
                echo("try:")
                for line in curl_lines(srv.url, layer):
                    echo(f"  {line}")
                status = srv.wait(seconds)
                if status is not None:
                    raise LayercakeError(f"{srv.name} exited by itself with status {status}", 1)
                echo(f"layercake: {seconds:g} s are up; stopping the server and all its workers")
        except KeyboardInterrupt:
            echo("\nlayercake: stopped (the server and all its workers)")
    return 0
