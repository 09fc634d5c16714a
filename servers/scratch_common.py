"""What both scratch servers do around serving: the command line, logging, loading the app, the listening socket,
and the pre-fork arbiter behind ``--workers N``.

Theory of operation
-------------------
``python -m servers.scratch_wsgi MODULE:ATTR`` and ``python -m servers.scratch_asgi MODULE:ATTR`` share their
flags (``--host --port --workers --no-access-log --log-level``, ``--http`` for the request parser, and one flag per
:class:`Limits` field, e.g. ``--max-body-bytes``, ``--header-timeout``), so :func:`parser` builds both and
:func:`limits_from` turns the parsed flags into a ``Limits``.  scratch-asgi adds ``--loop asyncio|uvloop``
(:func:`loop_factory`).  A choice whose package is missing (httptools, h11-mypyc, uvloop: the ``servers`` extra) is
refused while parsing the command line, with the pip command, before anything starts.  Once the server accepts connections it prints exactly one line to stderr,
``layercake: serving on http://HOST:PORT`` (with the real port when ``--port 0``): scripts and the registry wait
for it.

Several processes: a pre-forked listener, not SO_REUSEPORT
----------------------------------------------------------
``--workers N`` runs N copies of the server in N processes, to use N cores despite the GIL.  Two ways exist to let
them share a port:

* **SO_REUSEPORT** (Linux 3.9+): every process binds its *own* socket to the same port and the kernel spreads new
  connections across them by a hash of the addresses.  Distribution is even, but each socket has its own accept
  queue: connections already queued on the socket of a worker that exits are reset; ``--port 0`` would give every
  worker a different port; and the option is absent or has other semantics on macOS and Windows.
* **A pre-forked listener** (gunicorn's arbiter, and uvicorn's ``--workers``): the parent binds once, then forks;
  the children inherit the one listening socket and all call ``accept`` on it.  One queue: nothing is lost when a
  worker exits, the port is known before forking (so ``--port 0`` works and the parent can announce it), and it is
  portable to every POSIX system.  The cost is the "thundering herd" -- every idle worker wakes for a connection
  only one of them gets -- which for a handful of workers is a few wasted wakeups, and the kernel only hands the
  connection to one ``accept``.

We pre-fork.  The parent (:func:`run_workers`) is an arbiter in gunicorn's sense: it "never knows anything about
individual clients".  It binds, forks, waits until every child reports it is ready (through a pipe: after the ASGI
lifespan startup, say), prints the serving line, forwards SIGTERM/SIGINT to the children, replaces a child that
dies unexpectedly, and exits with 0 after a graceful shutdown -- or with the child's code when a child fails at
startup (a lifespan ``startup.failed`` stops the whole server rather than looping on respawns).

What it deliberately does not do: reload on code changes, recycle workers after N requests (gunicorn's
``max_requests``) or change the number of workers while running (gunicorn's TTIN/TTOU): the arbiter handles
SIGTERM and SIGINT only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from servers.core.events import RequestHead
from servers.core.http import access_line
from servers.core.limits import Limits
from servers.core.parsers import PARSERS, MissingParserPackage, parser_class
from servers.core.writer import ResponseWriter

log = logging.getLogger("layercake.server")
access_log = logging.getLogger("layercake.access")

# Exit code when the application cannot start (bad MODULE:ATTR, lifespan startup.failed); uvicorn uses 3 too.
STARTUP_FAILED = 3


def log_access(client: tuple[str, int] | None, head: RequestHead, writer: ResponseWriter, started_at: float) -> None:
    """One access-log line for a finished request cycle, the same from both servers."""
    elapsed = time.perf_counter() - started_at
    access_log.info(
        access_line(client, head.method, head.target, head.http_version, writer.status, writer.body_bytes, elapsed)
    )


class StartupFailed(Exception):
    """The application could not be loaded or refused to start; the message says why."""


# --- the command line ---------------------------------------------------------------------------------------------


#: ``--loop`` name -> the event loop's package (None: the standard library's).
LOOPS: dict[str, str | None] = {"asyncio": None, "uvloop": "uvloop"}
_EXTRA = "pip install 'layercake[servers]'"


def _http_choice(name: str) -> str:
    """``--http``: a parser name from ``servers/core/parsers.py`` whose package is installed."""
    try:
        parser_class(name)
    except (ValueError, MissingParserPackage) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _loop_choice(name: str) -> str:
    if name not in LOOPS:
        raise argparse.ArgumentTypeError(f"unknown event loop {name!r}; choices: {', '.join(LOOPS)}")
    package = LOOPS[name]
    if package is not None and importlib.util.find_spec(package) is None:
        raise argparse.ArgumentTypeError(f"--loop {name} needs the {package} package: {_EXTRA}")
    return name


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner(loop_factory=...)`` takes for ``--loop NAME`` (None: asyncio's default loop).

    uvloop is libuv's event loop behind asyncio's interface, written in Cython: the same coroutines and protocols run
    on it unchanged, and the loop's own work (polling, scheduling callbacks, transports) costs less.
    """
    if name == "asyncio":
        return None
    import uvloop  # imported only when asked for: it is optional

    return uvloop.new_event_loop


def parser(prog: str, description: str, *, threads: bool, loop: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("app", metavar="MODULE:ATTR", help="the application object, e.g. layers.bare_wsgi.app:app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)")
    if threads:
        p.add_argument("--threads", type=int, default=8, help="worker threads per process (default 8)")
    p.add_argument(
        "--http",
        default="h11",
        type=_http_choice,
        metavar="|".join(PARSERS),
        help="the request parser (default h11, the readable one; httptools is llhttp in C, as uvicorn's)",
    )
    if loop:
        p.add_argument(
            "--loop",
            default="asyncio",
            type=_loop_choice,
            metavar="|".join(LOOPS),
            help="the event loop (default asyncio; uvloop is libuv's, as uvicorn's --loop uvloop)",
        )
    p.add_argument("--workers", type=int, default=1, help="processes sharing the listener (default 1)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="no line per request")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    limits = p.add_argument_group("limits (defaults and precedents: servers/core/limits.py)")
    for f in dataclasses.fields(Limits):
        limits.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            metavar=type(f.default).__name__.upper(),
            help=f"default {f.default}",
        )
    return p


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
    )


def load_app(target: str) -> Any:
    """Import ``module:attr``.  A user's mistake becomes :class:`StartupFailed` with a readable message."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise StartupFailed(f"application must be given as MODULE:ATTR, e.g. layers.bare_wsgi.app:app (got {target!r})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise StartupFailed(f"cannot import module {module_name!r}: {exc}") from exc
        raise
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise StartupFailed(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


# --- the listening socket -----------------------------------------------------------------------------------------


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket.  SO_REUSEADDR so a restart does not wait for TIME_WAIT connections to expire."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupFailed(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(backlog)  # Limits.backlog; the kernel caps it at net.core.somaxconn
    return sock


def run_main(
    p: argparse.ArgumentParser, argv: list[str] | None, serve: Callable[[Any, argparse.Namespace], int]
) -> int:
    """A server's ``main``: parse the command line, set up logging, load the app, ``serve(app, args)``; a startup
    failure (a bad MODULE:ATTR, a port in use, a failed lifespan startup) is one line and exit code 3."""
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return serve(load_app(args.app), args)
    except StartupFailed as exc:
        print(f"layercake: {exc}", file=sys.stderr)
        return STARTUP_FAILED


@contextmanager
def in_thread(
    sock: socket.socket, serve: Callable[[Callable[[], None]], object], stop: Callable[[], object]
) -> Iterator[str]:
    """For tests: run ``serve(ready)`` in a background thread until it calls ``ready``; yield the base URL; then
    ``stop()`` and wait for the thread."""
    started = threading.Event()
    thread = threading.Thread(target=serve, args=(started.set,), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield url_of(sock)
    finally:
        stop()
        thread.join(10)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(sock: socket.socket) -> None:
    """The one line others wait for.  stderr, flushed, exactly this shape."""
    print(f"layercake: serving on {url_of(sock)}", file=sys.stderr, flush=True)


# --- several processes: the arbiter -------------------------------------------------------------------------------


def _nobody() -> None:
    """A respawned worker's ``ready``: nobody waits for it."""


def _tell(fd: int) -> None:
    os.write(fd, b"r")  # one byte per ready worker, read by the arbiter


def run_workers(count: int, sock: socket.socket, child: Callable[[Callable[[], None]], int]) -> int:
    """Fork ``count`` children running ``child(ready)`` on the inherited ``sock``; return the exit code.

    ``child`` must call ``ready()`` once it serves, and return its exit code.  See the module docstring.
    """
    if count <= 1:
        return child(lambda: announce(sock))
    read_end, write_end = os.pipe()
    pipe_closed = False
    children: dict[int, int] = {}  # pid -> slot
    stopping: list[int] = []

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: default signal dispositions, its own handlers come from child()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.close(read_end)
            code = 1
            try:
                # A worker respawned after startup is forked once the parent has closed its end of the
                # pipe (the descriptor number may since belong to something else): it has no one to tell.
                code = child(_nobody if pipe_closed else lambda: _tell(write_end))
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(code)  # never return into the parent's stack
        children[pid] = slot

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for slot in range(count):
        spawn(slot)
    os.close(write_end)
    pipe_closed = True
    ready = 0
    os.set_blocking(read_end, False)
    exit_code = 0
    while children:
        try:
            ready += len(os.read(read_end, 64))
            if ready >= count:
                announce(sock)
                ready = -(10**9)  # announce once
        except BlockingIOError:
            pass
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
            continue
        slot = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            exit_code = max(exit_code, code if code > 0 else 0)
        elif ready >= 0:  # a worker died before every worker was ready: a startup failure, stop everything
            log.error("worker %d exited with %d during startup; stopping", pid, code)
            forward(signal.SIGTERM, None)
            exit_code = code or STARTUP_FAILED
        else:
            log.warning("worker %d exited unexpectedly with %d; starting a new one", pid, code)
            spawn(slot)
    sock.close()
    return exit_code
