"""The server registry: every server layercake can put a layer on, as data.

Theory of operation
-------------------
``SERVERS`` maps a name to a :class:`ServerSpec`: the interface the server speaks
natively, what it supports (keep-alive, WebSockets, lifespan, worker processes, threads,
a choice of HTTP parser or event loop), the Python packages it needs (with the pip
extra that installs them), how its own command line spells our common flags, and notes
on where it parts from CONTRACT.md.  Like uvicorn's and bottle's registries, nothing is
imported to build the table: a spec names modules, and the only check made before a
start is whether those modules can be found (``importlib.util.find_spec``).  A missing
package disables the entry; starting it raises :class:`MissingPackage` naming the extra.

Every server runs as a **subprocess** -- the very command a user would type, run with
this interpreter (``python -m gunicorn ...`` for ``gunicorn ...``).  Running real servers
in-process would share our signal handlers, our event loop and our import state with
theirs; a subprocess is what production looks like, and it makes cleanup honest.  Each
server is started in a new session (``start_new_session=True``), so it leads its own
process group: stopping it is one ``killpg`` that reaches the master *and* every worker
it forked (gunicorn's arbiter, uvicorn's and granian's worker pools), first SIGTERM for a
graceful stop, then SIGKILL after a grace period.  Nothing is left behind -- the tests
check ``/proc`` for orphans.

Readiness is the same for every server: poll a TCP connect to the port until it
succeeds, and watch for the process exiting first (a bad import, a bad flag), in which
case :class:`ServerStartError` carries the tail of its stderr.  Servers print different
banners, but every one of them accepts connections when it is ready.

Bridges: a server serves the other interface through ``servers/bridges.py`` (a2wsgi).
``start_server`` swaps the app's import string for the bridge's
(``servers.bridges:wsgi_on_asgi`` or ``servers.bridges:asgi_on_wsgi``) and names the real
app in ``LAYERCAKE_BRIDGE_TARGET``; ``RunningServer.bridge`` says which way it went.

What it deliberately doesn't do: TLS, HTTP/2, Unix sockets, reloading.  Ports are
loopback by default; ``port=0`` picks a free one (bind to port 0, read the number,
close -- a tiny race that the readiness check would report as a start error).
"""

from __future__ import annotations

import atexit
import errno
import functools
import importlib.metadata
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

from layercake.errors import LayercakeError, MissingPackage, UnknownName
from layers import Layer, get_layer

Interface = Literal["wsgi", "asgi"]
Bridge = Literal["wsgi->asgi", "asgi->wsgi"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: How long a server may take to accept its first connection.  gunicorn and granian on a
#: busy two-core machine take one to three seconds; a bad start fails fast anyway,
#: because the process exits.
STARTUP_TIMEOUT = 30.0
#: How long a SIGTERM'd server may take to finish in-flight requests before SIGKILL.
#: gunicorn's own graceful_timeout is 30 s; we pass --graceful-timeout to match this.
STOP_GRACE = 5.0


class ServerStartError(LayercakeError):
    """The server exited or never listened; the message ends with the tail of its output."""

    def __init__(self, message: str, output: str = "") -> None:
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{message}\n--- server output (last lines) ---\n{tail}" if tail else message, 1)


# --------------------------------------------------------------------------------------
# Options and capabilities
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """The common flags, mapped by each spec onto its server's own command line.

    ``None`` means "the server's default" and is never an error; a value the server has
    no equivalent for is a :class:`LayercakeError` (exit 2) naming the servers that do.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    workers: int | None = None  # worker processes
    threads: int | None = None  # threads per worker (or the bridge's thread pool)
    http: str | None = None  # HTTP parser, e.g. "h11" | "httptools" on uvicorn
    loop: str | None = None  # event loop, "asyncio" | "uvloop"
    access_log: bool = False
    app_target: str | None = None  # "module:attr" served instead of the layer's own target
    env: dict[str, str] | None = None  # extra environment for the server process
    log_level: str | None = None  # passed where the server has the flag; None: its default
    capture_output: bool = True  # False: the server writes to our stdout/stderr (``serve``)
    startup_timeout: float = STARTUP_TIMEOUT


@dataclass(frozen=True)
class Capabilities:
    keep_alive: bool  # HTTP/1.1 persistent connections
    websockets: bool
    lifespan: bool  # runs the ASGI lifespan protocol (ASGI servers only)
    workers: bool  # --workers: several processes
    threads: bool  # --threads: a thread pool per process
    chunked_uploads: bool  # decodes Transfer-Encoding: chunked request bodies
    http_parsers: tuple[str, ...] = ()  # choices for --http (empty: fixed)
    loops: tuple[str, ...] = ()  # choices for --loop (empty: fixed)


@dataclass(frozen=True)
class Requirement:
    module: str  # what find_spec looks for
    package: str  # what pip installs
    in_extra: bool = True  # False: not in the server's pip extra, so the hint names the package itself


@dataclass(frozen=True, eq=False)
class ServerSpec:
    name: str
    interface: Interface  # the interface it speaks natively
    description: str
    program: str  # the console script a user types ("gunicorn")
    module: str  # what we run with ``python -m`` (same program, this interpreter)
    requires: tuple[Requirement, ...]
    capabilities: Capabilities
    parser: str  # the HTTP/1.1 parser it uses by default
    concurrency: str  # how it serves many requests at once
    arguments: Callable[[str, ServerOptions], list[str]] = field(repr=False)
    notes: tuple[str, ...] = ()
    #: contract case id -> why this server cannot pass it (the grid shows these as "known")
    gaps: dict[str, str] = field(default_factory=dict)
    extra: str = "servers"  # the pip extra that installs ``requires``
    runs: str = "subprocess"

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        """The interfaces served natively (the other one goes through a bridge)."""
        return (self.interface,)

    @property
    def missing(self) -> Requirement | None:
        for req in self.requires:
            if importlib.util.find_spec(req.module) is None:
                return req
        return None

    @property
    def available(self) -> bool:
        return self.missing is None

    def require(self, opts: ServerOptions | None = None) -> None:
        """Raise :class:`MissingPackage` if a package this server (with these options) needs is missing."""
        req = self.missing
        if req is not None:
            raise MissingPackage(f"server {self.name!r}", req.package, self.extra)
        for flag, value in (("http", opts.http if opts else None), ("loop", opts.loop if opts else None)):
            req = OPTION_REQUIRES.get((flag, value or ""))
            if req is not None and importlib.util.find_spec(req.module) is None:
                raise MissingPackage(f"{self.name} --{flag} {value}", req.package, self.extra if req.in_extra else None)

    def bridge_for(self, interface: Interface) -> Bridge | None:
        """The bridge needed to serve an app of ``interface`` here (None: native)."""
        if interface == self.interface:
            return None
        return "wsgi->asgi" if interface == "wsgi" else "asgi->wsgi"

    def bridge_losses(self, interface: Interface) -> tuple[str, ...]:
        """What serving an app of ``interface`` here loses to the bridge (empty: native)."""
        bridge = self.bridge_for(interface)
        if bridge is None:
            return ()
        from servers import bridges

        return bridges.LOSSES[bridge]

    def pattern(self) -> str:
        """The native command with placeholders, for ``layercake servers``."""
        return self.native_command("MODULE:APP", ServerOptions(port=8000))

    def native_command(self, target: str, opts: ServerOptions) -> str:
        return f"{self.program} {shlex.join(self.arguments(target, opts))}"

    def argv(self, target: str, opts: ServerOptions) -> list[str]:
        return [sys.executable, "-m", self.module, *self.arguments(target, opts)]


# --------------------------------------------------------------------------------------
# How each server spells the common flags
# --------------------------------------------------------------------------------------
# One function per server, so the mapping reads like the server's own documentation.
# ``check_options`` has already refused any flag the server's capabilities lack.


def _bind(opts: ServerOptions) -> str:
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    return f"{host}:{opts.port}"


def _scratch_wsgi(target: str, o: ServerOptions) -> list[str]:
    args = [target, "--host", o.host, "--port", str(o.port)]
    if o.threads:
        args += ["--threads", str(o.threads)]
    if o.workers:
        args += ["--workers", str(o.workers)]
    if not o.access_log:
        args.append("--no-access-log")
    if o.log_level:
        args += ["--log-level", o.log_level]
    return args


def _scratch_asgi(target: str, o: ServerOptions) -> list[str]:
    args = [target, "--host", o.host, "--port", str(o.port)]
    if o.workers:
        args += ["--workers", str(o.workers)]
    if not o.access_log:
        args.append("--no-access-log")
    if o.log_level:
        args += ["--log-level", o.log_level]
    return args


def _stdlib_launcher(server: str) -> Callable[[str, ServerOptions], list[str]]:
    def arguments(target: str, o: ServerOptions) -> list[str]:
        args = [server, target, "--host", o.host, "--port", str(o.port)]
        if not o.access_log:
            args.append("--no-access-log")
        return args

    return arguments


@functools.cache
def _gunicorn_has_control_socket() -> bool:
    """gunicorn 27 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl) in every arbiter, so
    two gunicorns started side by side (the grid's --jobs, the tests) would share it.  We use none of its
    commands, so each arbiter is started without one."""
    try:
        return int(importlib.metadata.version("gunicorn").split(".")[0]) >= 27
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


def _gunicorn(worker: str) -> Callable[[str, ServerOptions], list[str]]:
    def arguments(target: str, o: ServerOptions) -> list[str]:
        k = worker
        if worker == "uvicorn_worker.UvicornWorker" and o.http == "h11":
            k = "uvicorn_worker.UvicornH11Worker"  # the uvicorn worker's one parser switch
        args = ["-k", k, "-w", str(o.workers or 1)]
        if worker == "gthread":
            args += ["--threads", str(o.threads or 8)]
        if worker == "asgi":
            if o.loop:
                args += ["--asgi-loop", o.loop]
            if o.http:
                args += ["--http-parser", o.http]
        args += ["-b", _bind(o), "--graceful-timeout", str(int(STOP_GRACE))]
        if _gunicorn_has_control_socket():
            args.append("--no-control-socket")
        if o.access_log:
            args += ["--access-logfile", "-"]
        if o.log_level:
            args += ["--log-level", o.log_level]
        return [*args, target]

    return arguments


def _uvicorn(target: str, o: ServerOptions) -> list[str]:
    args = ["--host", o.host, "--port", str(o.port)]
    if o.http:
        args += ["--http", o.http]
    if o.loop:
        args += ["--loop", o.loop]
    if o.workers:
        args += ["--workers", str(o.workers)]
    if not o.access_log:
        args.append("--no-access-log")
    if o.log_level:
        args += ["--log-level", o.log_level]
    return [*args, target]


def _hypercorn(target: str, o: ServerOptions) -> list[str]:
    # Hypercorn's worker class *is* its event loop choice: -k asyncio | uvloop | trio.
    args = ["-b", _bind(o), "-k", o.loop or "asyncio"]
    if o.workers:
        args += ["-w", str(o.workers)]
    if o.access_log:
        args += ["--access-logfile", "-"]
    if o.log_level:
        args += ["--log-level", o.log_level]
    return [*args, target]


def _granian(interface: str) -> Callable[[str, ServerOptions], list[str]]:
    def arguments(target: str, o: ServerOptions) -> list[str]:
        args = ["--interface", interface, "--host", o.host, "--port", str(o.port)]
        if o.workers:
            args += ["--workers", str(o.workers)]
        if o.threads:  # WSGI only: the pool that runs the blocking app
            args += ["--blocking-threads", str(o.threads)]
        if o.loop:
            args += ["--loop", o.loop]
        args.append("--access-log" if o.access_log else "--no-access-log")
        if o.log_level:
            args += ["--log-level", o.log_level]
        return [*args, target]

    return arguments


def _waitress(target: str, o: ServerOptions) -> list[str]:
    args = [f"--listen={_bind(o)}"]
    if o.threads:
        args.append(f"--threads={o.threads}")
    return [*args, target]


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

#: Choices of --http/--loop that need a package of their own (uvicorn[standard] brings the
#: first two; gunicorn's C parser is the gunicorn_h1c extension, "gunicorn[fast]").
OPTION_REQUIRES: dict[tuple[str, str], Requirement] = {
    ("http", "httptools"): Requirement("httptools", "httptools"),
    ("loop", "uvloop"): Requirement("uvloop", "uvloop"),
    ("http", "fast"): Requirement("gunicorn_h1c", "gunicorn-h1c", in_extra=False),  # see gunicorn-asgi's notes
}

_GUNICORN = Requirement("gunicorn", "gunicorn")
_UVICORN = Requirement("uvicorn", "uvicorn")

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        # ---- WSGI ----------------------------------------------------------------------
        ServerSpec(
            "scratch-wsgi",
            "wsgi",
            "Our annotated WSGI server on h11: a selector thread and a thread pool.",
            "python -m servers.scratch_wsgi",
            "servers.scratch_wsgi",
            (Requirement("h11", "h11"),),
            Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=True, threads=True, chunked_uploads=True
            ),
            parser="h11 (pure Python)",
            concurrency="a thread pool per process, pre-forked workers",
            arguments=_scratch_wsgi,
            extra="all",
            notes=("Written to be read: servers/scratch_wsgi.py and the sans-I/O core in servers/core/.",),
        ),
        ServerSpec(
            "wsgiref",
            "wsgi",
            "The standard library's reference server (wsgiref.simple_server).",
            "python -m servers.launch",
            "servers.launch",
            (),
            Capabilities(
                keep_alive=False, websockets=False, lifespan=False, workers=False, threads=False, chunked_uploads=False
            ),
            parser="http.server (stdlib)",
            concurrency="one request at a time, one thread",
            arguments=_stdlib_launcher("wsgiref"),
            notes=(
                "Speaks HTTP/1.0: every response closes the connection, so streamed bodies are delimited by "
                "the close rather than chunked.",
                "Cannot take chunked uploads: wsgi.input is the raw socket file and Transfer-Encoding is not "
                "decoded, so POST /echo with a chunked body fails (PEP 3333 leaves this to the server).",
                "One request at a time: /slow blocks everybody behind it.",
            ),
            gaps={
                "stream": "HTTP/1.0 server: a body without Content-Length is delimited by closing the "
                "connection, never chunked (RFC 9112 §6.3 ¶8)",
                "echo": "does not decode a chunked request body (Transfer-Encoding is passed through to the "
                "app as raw bytes on wsgi.input)",
                "echo_too_large": "does not decode a chunked request body, so the app cannot count it",
                "ws_not_in_wsgi": "answers the upgrade request with an HTTP/1.0 status line, which a WebSocket "
                "client rejects outright (RFC 6455 §4.1 requires HTTP/1.1) before seeing the 404",
            },
        ),
        ServerSpec(
            "werkzeug",
            "wsgi",
            "Werkzeug's development server, run_simple(threaded=True).",
            "python -m servers.launch",
            "servers.launch",
            (Requirement("werkzeug", "werkzeug"),),
            Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=False, threads=False, chunked_uploads=True
            ),
            parser="http.server (stdlib)",
            concurrency="a new thread per connection (ThreadingMixIn)",
            arguments=_stdlib_launcher("werkzeug"),
            notes=(
                "A development server: Werkzeug itself says not to deploy it.",
                "threaded=True starts an unbounded thread per connection, so --threads has no meaning.",
            ),
        ),
        ServerSpec(
            "gunicorn-sync",
            "wsgi",
            "gunicorn's pre-fork arbiter with sync workers.",
            "gunicorn",
            "gunicorn",
            (_GUNICORN,),
            Capabilities(
                keep_alive=False, websockets=False, lifespan=False, workers=True, threads=False, chunked_uploads=True
            ),
            parser="gunicorn's own (pure Python)",
            concurrency="one request at a time per worker process",
            arguments=_gunicorn("sync"),
            notes=(
                "Sync workers close every connection after its response (no keep-alive) by design: "
                "they expect a buffering proxy in front.",
                "--threads on a sync worker silently turns it into gthread in gunicorn; we refuse it "
                "and point to gunicorn-gthread instead.",
            ),
        ),
        ServerSpec(
            "gunicorn-gthread",
            "wsgi",
            "gunicorn's pre-fork arbiter with threaded workers.",
            "gunicorn",
            "gunicorn",
            (_GUNICORN,),
            Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=True, threads=True, chunked_uploads=True
            ),
            parser="gunicorn's own (pure Python)",
            concurrency="a thread pool per worker process (default 8)",
            arguments=_gunicorn("gthread"),
        ),
        ServerSpec(
            "waitress",
            "wsgi",
            "Pylons' pure-Python production WSGI server.",
            "waitress-serve",
            "waitress",
            (Requirement("waitress", "waitress"),),
            Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=False, threads=True, chunked_uploads=True
            ),
            parser="waitress's own (pure Python)",
            concurrency="asyncore-style I/O loop + a task thread pool (default 4)",
            arguments=_waitress,
            notes=(
                "Buffers: waitress reads the whole request body before calling the app (spooling large "
                "ones to a temp file) and buffers response output, so /echo is not streamed end to end.",
                "One process only: waitress has no workers.",
            ),
            gaps={
                "create_too_large": "reads the whole declared body before calling the app, so the app cannot "
                "answer 413 until the client has sent it (the contract's client waits out its timeout)",
                "echo_too_large": "reads the whole declared body before calling the app, so the app cannot "
                "answer 413 until the client has sent it (the contract's client waits out its timeout)",
            },
        ),
        ServerSpec(
            "granian-wsgi",
            "wsgi",
            "Granian (Rust, hyper + tokio) with its WSGI interface.",
            "granian",
            "granian",
            (Requirement("granian", "granian"),),
            Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=True, threads=True, chunked_uploads=True
            ),
            parser="hyper (Rust)",
            concurrency="Rust I/O threads + a blocking thread pool for the app",
            arguments=_granian("wsgi"),
            notes=(
                "--threads maps to --blocking-threads, the pool that runs the WSGI callable.",
                "Reads the status and headers as soon as the app returns, so an app whose start_response "
                "runs inside its first iteration (a generator: PEP 3333 allows it) gets 200 and no "
                "headers; the ASGI->WSGI bridge pulls the first chunk early to work around it.",
            ),
        ),
        # ---- ASGI ----------------------------------------------------------------------
        ServerSpec(
            "scratch-asgi",
            "asgi",
            "Our annotated ASGI server on h11 and wsproto: one asyncio event loop.",
            "python -m servers.scratch_asgi",
            "servers.scratch_asgi",
            (Requirement("h11", "h11"), Requirement("wsproto", "wsproto")),
            Capabilities(
                keep_alive=True, websockets=True, lifespan=True, workers=True, threads=False, chunked_uploads=True
            ),
            parser="h11 (pure Python)",
            concurrency="one asyncio event loop per process, pre-forked workers",
            arguments=_scratch_asgi,
            extra="all",
            notes=("Written to be read: servers/scratch_asgi.py and the sans-I/O core in servers/core/.",),
        ),
        ServerSpec(
            "uvicorn",
            "asgi",
            "Uvicorn: asyncio, with a choice of HTTP parser and event loop.",
            "uvicorn",
            "uvicorn",
            (_UVICORN,),
            Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                http_parsers=("h11", "httptools"),
                loops=("asyncio", "uvloop"),
            ),
            parser="httptools if installed, else h11",
            concurrency="one event loop per process",
            arguments=_uvicorn,
            notes=("--http httptools and --loop uvloop need uvicorn[standard].",),
        ),
        ServerSpec(
            "hypercorn",
            "asgi",
            "Hypercorn: h11/h2/wsproto on asyncio, uvloop or trio.",
            "hypercorn",
            "hypercorn",
            (Requirement("hypercorn", "hypercorn"),),
            Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                loops=("asyncio", "uvloop"),
            ),
            parser="h11 (pure Python)",
            concurrency="one event loop per process",
            arguments=_hypercorn,
            notes=("--loop selects hypercorn's worker class (-k asyncio | uvloop).",),
        ),
        ServerSpec(
            "granian-asgi",
            "asgi",
            "Granian (Rust, hyper + tokio) with its ASGI interface.",
            "granian",
            "granian",
            (Requirement("granian", "granian"),),
            Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                loops=("asyncio", "uvloop"),
            ),
            parser="hyper (Rust)",
            concurrency="Rust I/O threads feeding one Python event loop per worker",
            arguments=_granian("asgi"),
        ),
        ServerSpec(
            "gunicorn-uvicorn",
            "asgi",
            "gunicorn's arbiter managing uvicorn workers (uvicorn-worker).",
            "gunicorn",
            "gunicorn",
            (_GUNICORN, _UVICORN, Requirement("uvicorn_worker", "uvicorn-worker")),
            Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                http_parsers=("h11", "httptools"),
            ),
            parser="httptools if installed, else h11",
            concurrency="pre-forked processes, one event loop each",
            arguments=_gunicorn("uvicorn_worker.UvicornWorker"),
            notes=(
                "uvicorn.workers is deprecated in favour of the uvicorn-worker package, used here.",
                "--http h11 selects UvicornH11Worker; the worker has no loop switch.",
            ),
        ),
        ServerSpec(
            "gunicorn-asgi",
            "asgi",
            "gunicorn's own native ASGI worker (-k asgi, gunicorn >= 24).",
            "gunicorn",
            "gunicorn",
            (Requirement("gunicorn.workers.gasgi", "gunicorn>=24"),),
            Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                http_parsers=("python", "fast"),
                loops=("asyncio", "uvloop"),
            ),
            parser="gunicorn's own (pure Python, or gunicorn_h1c with --http fast)",
            concurrency="pre-forked processes, one event loop each",
            arguments=_gunicorn("asgi"),
            notes=(
                "--http maps to --http-parser: python (gunicorn's pure-Python parser) or fast (the "
                "gunicorn-h1c C extension, picohttpparser); without --http gunicorn uses fast when "
                "gunicorn-h1c is installed.",
                "Seen with gunicorn 27.0.1 + gunicorn-h1c 0.6.9: on a keep-alive connection a 1 MiB POST "
                "/echo is sometimes dropped without a response (20 of 60 through the WSGI->ASGI bridge, "
                "none with --http python); gunicorn-h1c is therefore not in the servers extra.",
            ),
        ),
    )
}


def get_server(name: str) -> ServerSpec:
    """The server called ``name``; an unknown name raises :class:`UnknownName` listing them."""
    try:
        return SERVERS[name]
    except KeyError:
        raise UnknownName("server", name, SERVERS) from None


def default_server(interface: Interface) -> str:
    """The server a layer of ``interface`` runs on when none is named: ours."""
    return {"wsgi": "scratch-wsgi", "asgi": "scratch-asgi"}[interface]


# --------------------------------------------------------------------------------------
# Checking options
# --------------------------------------------------------------------------------------


def _supporting(flag: str) -> str:
    names = [s.name for s in SERVERS.values() if getattr(s.capabilities, flag)]
    return ", ".join(names)


def check_options(spec: ServerSpec, opts: ServerOptions, bridge: Bridge | None = None) -> None:
    """Refuse, with exit status 2, a flag this server has no equivalent for."""
    caps = spec.capabilities
    if opts.workers is not None and opts.workers < 1 or opts.threads is not None and opts.threads < 1:
        raise LayercakeError("--workers and --threads must be at least 1", 2)
    if opts.workers and opts.workers > 1 and not caps.workers:
        raise LayercakeError(
            f"server {spec.name!r} runs a single process and has no --workers; "
            f"servers with workers: {_supporting('workers')}",
            2,
        )
    # Through the WSGI->ASGI bridge --threads sizes a2wsgi's thread pool, whatever the server.
    if opts.threads and not caps.threads and bridge != "wsgi->asgi":
        hint = " (use gunicorn-gthread)" if spec.name == "gunicorn-sync" else ""
        raise LayercakeError(
            f"server {spec.name!r} has no --threads{hint}; servers with a thread pool: {_supporting('threads')}", 2
        )
    for flag, value, choices in (("--http", opts.http, caps.http_parsers), ("--loop", opts.loop, caps.loops)):
        if value is None:
            continue
        if not choices:
            raise LayercakeError(
                f"server {spec.name!r} has no {flag} choice (it uses {spec.parser if flag == '--http' else 'a fixed loop'})",
                2,
            )
        if value not in choices:
            raise LayercakeError(f"server {spec.name!r} takes {flag} {' | '.join(choices)}, not {value!r}", 2)
    if opts.port < 0 or opts.port > 65535:
        raise LayercakeError(f"port {opts.port} is out of range 0..65535", 2)


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
