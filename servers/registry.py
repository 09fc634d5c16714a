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

This module is the table and the checks made against it (:func:`check_options`); the
processes themselves -- starting, readiness, stopping a whole process group -- are
``servers/supervise.py``, which reads this table and nothing else reads it for them.

Bridges: a server serves the other interface through ``servers/bridges.py`` (a2wsgi);
:meth:`ServerSpec.bridge_for` says which way a layer of the other interface goes.

What it deliberately doesn't do: TLS, HTTP/2, Unix sockets, reloading.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from layercake.errors import LayercakeError, MissingPackage, UnknownName

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


def findable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    ``find_spec`` on a dotted name imports the parents first, and raises
    ModuleNotFoundError when one is missing (``gunicorn.workers.gasgi`` without gunicorn)
    instead of returning None: on a minimal install that is the common case, not an error.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass(frozen=True)
class Requirement:
    module: str  # what find_spec looks for
    package: str  # what pip installs
    in_extra: bool = True  # False: not in the server's pip extra, so the hint names the package itself


@dataclass(frozen=True, eq=False, kw_only=True)
class ServerSpec:
    """One server, as data.  Built with keywords only: thirteen entries of seven strings in a row are unreadable."""

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
            if not findable(req.module):
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
            if req is not None and not findable(req.module):
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
    if o.http:
        args += ["--http", o.http]
    if o.workers:
        args += ["--workers", str(o.workers)]
    if not o.access_log:
        args.append("--no-access-log")
    if o.log_level:
        args += ["--log-level", o.log_level]
    return args


def _scratch_asgi(target: str, o: ServerOptions) -> list[str]:
    args = [target, "--host", o.host, "--port", str(o.port)]
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
    ("http", "h11-mypyc"): Requirement("h11_mypyc", "h11-mypyc"),  # our scratch servers' compiled h11
    ("http", "fast"): Requirement("gunicorn_h1c", "gunicorn-h1c", in_extra=False),  # see gunicorn-asgi's notes
}

#: The parsers behind our servers' --http (servers/core/parsers.py PARSERS; the registry imports nothing).
SCRATCH_PARSERS = ("h11", "httptools", "h11-mypyc")
_GUNICORN = Requirement("gunicorn", "gunicorn")
_UVICORN = Requirement("uvicorn", "uvicorn")

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        # ---- WSGI ----------------------------------------------------------------------
        ServerSpec(
            name="scratch-wsgi",
            interface="wsgi",
            description="Our annotated WSGI server on h11: a selector thread and a thread pool.",
            program="python -m servers.scratch_wsgi",
            module="servers.scratch_wsgi",
            requires=(Requirement("h11", "h11"),),
            capabilities=Capabilities(
                keep_alive=True,
                websockets=False,
                lifespan=False,
                workers=True,
                threads=True,
                chunked_uploads=True,
                http_parsers=SCRATCH_PARSERS,
            ),
            parser="h11 (pure Python) unless --http says otherwise",
            concurrency="a thread pool per process, pre-forked workers",
            arguments=_scratch_wsgi,
            extra="all",
            notes=("Written to be read: servers/scratch_wsgi.py and the sans-I/O core in servers/core/.",),
        ),
        ServerSpec(
            name="wsgiref",
            interface="wsgi",
            description="The standard library's reference server (wsgiref.simple_server).",
            program="python -m servers.launch",
            module="servers.launch",
            requires=(),
            capabilities=Capabilities(
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
            name="werkzeug",
            interface="wsgi",
            description="Werkzeug's development server, run_simple(threaded=True).",
            program="python -m servers.launch",
            module="servers.launch",
            requires=(Requirement("werkzeug", "werkzeug"),),
            capabilities=Capabilities(
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
            name="gunicorn-sync",
            interface="wsgi",
            description="gunicorn's pre-fork arbiter with sync workers.",
            program="gunicorn",
            module="gunicorn",
            requires=(_GUNICORN,),
            capabilities=Capabilities(
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
            name="gunicorn-gthread",
            interface="wsgi",
            description="gunicorn's pre-fork arbiter with threaded workers.",
            program="gunicorn",
            module="gunicorn",
            requires=(_GUNICORN,),
            capabilities=Capabilities(
                keep_alive=True, websockets=False, lifespan=False, workers=True, threads=True, chunked_uploads=True
            ),
            parser="gunicorn's own (pure Python)",
            concurrency="a thread pool per worker process (default 8)",
            arguments=_gunicorn("gthread"),
        ),
        ServerSpec(
            name="waitress",
            interface="wsgi",
            description="Pylons' pure-Python production WSGI server.",
            program="waitress-serve",
            module="waitress",
            requires=(Requirement("waitress", "waitress"),),
            capabilities=Capabilities(
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
            name="granian-wsgi",
            interface="wsgi",
            description="Granian (Rust, hyper + tokio) with its WSGI interface.",
            program="granian",
            module="granian",
            requires=(Requirement("granian", "granian"),),
            capabilities=Capabilities(
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
            name="scratch-asgi",
            interface="asgi",
            description="Our annotated ASGI server on h11 and wsproto: one asyncio event loop.",
            program="python -m servers.scratch_asgi",
            module="servers.scratch_asgi",
            requires=(Requirement("h11", "h11"), Requirement("wsproto", "wsproto")),
            capabilities=Capabilities(
                keep_alive=True,
                websockets=True,
                lifespan=True,
                workers=True,
                threads=False,
                chunked_uploads=True,
                http_parsers=SCRATCH_PARSERS,
                loops=("asyncio", "uvloop"),
            ),
            parser="h11 (pure Python) unless --http says otherwise",
            concurrency="one asyncio (or uvloop) event loop per process, pre-forked workers",
            arguments=_scratch_asgi,
            extra="all",
            notes=("Written to be read: servers/scratch_asgi.py and the sans-I/O core in servers/core/.",),
        ),
        ServerSpec(
            name="uvicorn",
            interface="asgi",
            description="Uvicorn: asyncio, with a choice of HTTP parser and event loop.",
            program="uvicorn",
            module="uvicorn",
            requires=(_UVICORN,),
            capabilities=Capabilities(
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
            name="hypercorn",
            interface="asgi",
            description="Hypercorn: h11/h2/wsproto on asyncio, uvloop or trio.",
            program="hypercorn",
            module="hypercorn",
            requires=(Requirement("hypercorn", "hypercorn"),),
            capabilities=Capabilities(
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
            name="granian-asgi",
            interface="asgi",
            description="Granian (Rust, hyper + tokio) with its ASGI interface.",
            program="granian",
            module="granian",
            requires=(Requirement("granian", "granian"),),
            capabilities=Capabilities(
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
            name="gunicorn-uvicorn",
            interface="asgi",
            description="gunicorn's arbiter managing uvicorn workers (uvicorn-worker).",
            program="gunicorn",
            module="gunicorn",
            requires=(_GUNICORN, _UVICORN, Requirement("uvicorn_worker", "uvicorn-worker")),
            capabilities=Capabilities(
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
            name="gunicorn-asgi",
            interface="asgi",
            description="gunicorn's own native ASGI worker (-k asgi, gunicorn >= 24).",
            program="gunicorn",
            module="gunicorn",
            requires=(Requirement("gunicorn.workers.gasgi", "gunicorn>=24"),),
            capabilities=Capabilities(
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
