"""In-process cost of a layer: µs per request, and deterministic work counters.

Theory of operation
-------------------
Over a socket, a layer's cost is mixed with the server's, the kernel's and the load
generator's, and with whatever else the machine is doing.  Here the app is called
directly -- a prebuilt ``environ`` (PEP 3333) or ``scope`` (ASGI HTTP), a ``receive``
that hands over the body once, a ``send``/``start_response`` that only notes the
status and counts bytes -- so what is measured is the layer alone.  Two kinds of
figure come out:

**Time** (µs per request): a hot loop of batches, timed with ``perf_counter``, for a
few tenths of a second; the median batch and the range.  This is noisy like any
timing, only much less than a socket benchmark.

**Counters**, which are deterministic -- the same on a busy machine as on a quiet
one, two runs give identical numbers:

- *Python calls*: frames entered, seen by ``sys.setprofile`` ``call`` events.  On
  CPython 3.11 resuming a generator or coroutine also enters its frame and is counted
  (an ``await`` chain is real work the interpreter does);
- *C calls*: ``c_call`` events -- builtins and extension functions.  pydantic-core is
  Rust, so FastAPI's validation and serialisation show up here, not as Python calls;
- *lines*: distinct source lines executed (``sys.settrace`` ``line`` events, as a set
  of ``(file, line)``), and ``line_events``, the number of line events (a loop's body
  counts once per iteration);
- *allocation*: with ``tracemalloc``, the peak of traced memory above the level
  before the request (``peak_bytes``) and what stays allocated after it
  (``net_bytes``);
- *thread hops* (``thread_hops``): how many times the request's work was handed to
  another thread -- counted from the profile events, as each stretch of events on a
  thread other than the one that started the request and that calls into code outside
  the stdlib (a pool worker going back to sleep after its job is stdlib only, and not
  a hop), a thread starting is not one either (the job it is then given is), nor is a job
  resumed after its thread waited for another (the frame that began the hop is still on
  its stack) -- the trace profiler's rules exactly.  0 for a
  layer that never leaves the calling thread; 1 for a FastAPI plain ``def`` endpoint
  without a response model (anyio's worker thread), 2 with one (FastAPI validates the
  return value in the pool too); one per ``sync_to_async`` for Django on ASGI.

Each is broken down by *package*, decided from the code's file (or, for a C call, the
function's module): ``layer`` (``layers/``: our layer code and the shared store and
validator), ``server`` (``servers/``; in-process this is empty, and the driver's own
``receive``/``send``/``start_response``, which stand in for a server, are counted as
``driver``), ``starlette``, ``fastapi``, ``pydantic`` (with pydantic-core), ``werkzeug``,
``flask``, ``django``, ``asgiref`` (Django's sync/async bridge), ``a2wsgi``, ``stdlib``
(including ``asyncio``, ``json``, ``sqlite3`` and builtins), and ``other`` (e.g. anyio,
jinja2, itsdangerous).

How determinism is kept: each layer is measured in a fresh subprocess (``python -m
layercake.bench.costs LAYER``), so no layer inherits another's imports or caches;
each endpoint is called ``WARMUP`` times before anything is counted (first-call paths:
lazy imports, compiled regexes, ``functools.cache`` fills); the counted request runs
with the garbage collector disabled (a collection would run ``__del__`` methods and
weakref callbacks of unrelated objects); and threads are covered -- FastAPI runs a
plain ``def`` endpoint in a worker thread, so the hooks are installed for new threads
(``threading.setprofile``/``settrace``) before the app is loaded, and they uninstall
themselves per thread when counting is over, so the timing loop runs unhooked.

Why not the lead's :mod:`layercake.inprocess` drivers: they are built for checking
the contract -- the ASGI driver runs its loop on a background thread and hands every
request across with ``run_coroutine_threadsafe``, the WSGI one wraps the app in
``wsgiref.validate`` -- which is right for correctness and wrong here: both add work
per request that would be counted and timed as the layer's.  This driver is the
smallest thing that satisfies each spec: the same event loop thread as the caller,
no validation wrapper, and a ``receive`` that returns the body once and then waits
for the response to finish before reporting ``http.disconnect`` (ASGI HTTP spec:
``receive`` blocks until there is a message).

Bridges: ``LAYER@asgi`` / ``LAYER@wsgi`` measures a layer through its a2wsgi bridge
(``servers/bridges.py``), the way a server of the other interface runs it -- Flask as an
ASGI app, FastAPI as a WSGI callable -- so the bridge's cost shows up under ``a2wsgi``
(and its thread hand-offs under ``stdlib``).  ``bench --in-process --bridged`` adds these
rows.  Both bridges hand each request between threads that release the GIL for I/O
(self-pipes, queues), so where the OS switches threads varies and their counters are
close across runs (within a few percent) rather than identical; such rows carry
``"exact": false``.

Your own app: ``bench --in-process --app module:attr --path /hello`` measures a user's
application (:mod:`layercake.apps`) the same way, on requests named by method and path
(:func:`app_endpoint`) instead of the contract's endpoints -- and, the contract not
applying, whatever status it answers is its answer.  Its own code is counted as
``layer`` (``$LAYERCAKE_APP_ROOT`` names it).

What it deliberately doesn't do: parse HTTP, or count the work of a server (that is
what the socket benchmark adds on top), or count time spent in C inside a call (the
profiler sees calls, not their duration).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from layercake.bench.endpoints import ENDPOINTS, LADDER_ENDPOINTS, Endpoint, get_endpoint
from layercake.bench.loadgen import Request
from layercake.errors import LayercakeError
from servers.core.asgi import http_scope
from servers.core.events import RequestHead
from servers.core.wsgi import build_environ
from servers.lifespan import LifespanRunner

#: Calls of each endpoint before counting or timing, so every first-call path has run
#: (lazy imports, regexes compiled on first use, the sqlite3 module's statement cache,
#: functools caches).  Far more than needed; a path still warming up would show as a
#: difference between two runs, which a test checks for.
WARMUP = 50

#: Seconds the loop thread sleeps at the end of a counted ASGI request so thread-pool
#: workers reach their idle wait inside the counting window (one ``time.sleep`` C call,
#: counted under ``driver`` on every request alike).
SETTLE = 0.02

#: The packages of a breakdown, in the order reports show them.
PACKAGES = (
    "layer",
    "server",
    "driver",
    "starlette",
    "fastapi",
    "pydantic",
    "werkzeug",
    "flask",
    "django",
    "asgiref",
    "a2wsgi",
    "stdlib",
    "other",
)

PROJECT = Path(__file__).resolve().parents[2]
_THIS_FILE = str(Path(__file__).resolve())
# Where threading calls a new thread's run(): a run() of code outside the stdlib called from
# here is a worker thread starting, not a job handed to it (see _Hooks.profile).
_THREAD_START = threading.Thread._bootstrap_inner.__code__  # type: ignore[attr-defined]  # a private CPython method, not in typeshed: the frame every thread starts in
_STDLIB = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
_APP_ROOT = os.environ.get("LAYERCAKE_APP_ROOT", "")  # --app's own code: a directory ending in "/" or a file
_SITE = ("site-packages", "dist-packages")
_TOP_LEVEL = {
    "starlette": "starlette",
    "fastapi": "fastapi",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "werkzeug": "werkzeug",
    "flask": "flask",
    "django": "django",
    "asgiref": "asgiref",
    "a2wsgi": "a2wsgi",
    "layers": "layer",
    "servers": "server",
}


# --- which package a piece of code belongs to -------------------------------------------------------------------------


def package_of_file(filename: str) -> str:
    """The breakdown package for a code object's ``co_filename``."""
    if filename == _THIS_FILE:
        return "driver"
    if filename.startswith("<frozen "):
        return "stdlib"  # frozen modules are the stdlib's (importlib, os, codecs, ...)
    path = os.path.abspath(filename)
    if _APP_ROOT and (path == _APP_ROOT or (_APP_ROOT.endswith(os.sep) and path.startswith(_APP_ROOT))):
        return "layer"
    for marker in _SITE:
        sep = f"{os.sep}{marker}{os.sep}"
        if sep in path:
            top = path.split(sep, 1)[1].split(os.sep, 1)[0].removesuffix(".py")
            return _TOP_LEVEL.get(top, "other")
    if path.startswith(str(PROJECT) + os.sep):
        top = path[len(str(PROJECT)) + 1 :].split(os.sep, 1)[0]
        return _TOP_LEVEL.get(top, "other")
    if path.startswith(_STDLIB):
        return "stdlib"
    return "other"


def package_of_module(module: str | None) -> str | None:
    """The package for a C function's ``__module__`` (None when it has none we can use)."""
    if not module:
        return None
    top = module.split(".", 1)[0].lstrip("_") if module.startswith("_pydantic") else module.split(".", 1)[0]
    if top in _TOP_LEVEL:
        return _TOP_LEVEL[top]
    if top in sys.stdlib_module_names or top == "builtins" or top.lstrip("_") in sys.stdlib_module_names:
        return "stdlib"
    return "other"


def package_of_c_function(func: Any, caller_filename: str) -> str:
    """A C call belongs to its function's module; a method to its type's; else to its caller."""
    module = getattr(func, "__module__", None)
    if module is None:
        owner = getattr(func, "__self__", None)
        if owner is not None and not isinstance(owner, type(sys)):
            module = type(owner).__module__
        elif owner is not None:
            module = owner.__name__
    return package_of_module(module) or package_of_file(caller_filename)


# --- the counters ----------------------------------------------------------------------------------------------------


@dataclass
class Counts:
    """Work counters for one request, by package."""

    calls: Counter[str] = field(default_factory=Counter)
    c_calls: Counter[str] = field(default_factory=Counter)
    lines: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    line_events: Counter[str] = field(default_factory=Counter)
    peak_bytes: int = 0
    net_bytes: int = 0
    thread_hops: int = 0

    def to_dict(self) -> dict[str, Any]:
        packages = [p for p in PACKAGES if self.calls[p] or self.c_calls[p] or self.lines.get(p)]
        return {
            "calls": sum(self.calls.values()),
            "c_calls": sum(self.c_calls.values()),
            "lines": sum(len(s) for s in self.lines.values()),
            "line_events": sum(self.line_events.values()),
            "peak_bytes": self.peak_bytes,
            "net_bytes": self.net_bytes,
            "thread_hops": self.thread_hops,
            "by_package": {
                p: {
                    "calls": self.calls[p],
                    "c_calls": self.c_calls[p],
                    "lines": len(self.lines.get(p, ())),
                    "line_events": self.line_events[p],
                }
                for p in packages
            },
        }


class _Hooks:
    """sys.setprofile / sys.settrace hooks, armed for every thread, active only while counting."""

    def __init__(self) -> None:
        self.counts = Counts()
        self.profiling = False
        self.tracing = False
        self.armed = True
        self._file_package: dict[str, str] = {}
        # Thread hops: the thread that started the request, the thread of the last event,
        # and whether the current stretch of events on that thread has been counted.
        self.origin = 0
        self._segment_thread = 0
        self._segment_counted = True
        self._jobs: dict[int, Any] = {}  # thread -> the frame its current hop began with

    def start_profiling(self) -> None:
        self.origin = self._segment_thread = threading.get_ident()
        self._segment_counted = True
        self._jobs = {}
        self.profiling = True

    # The brackets around one counted request (see _SyncBracket / _AsyncBracket): on, then off.
    def arm_profile(self) -> None:
        self.start_profiling()
        sys.setprofile(self.profile)

    def disarm_profile(self) -> None:
        sys.setprofile(None)
        self.profiling = False

    def arm_trace(self) -> None:
        self.tracing = True
        sys.settrace(self.trace)

    def disarm_trace(self) -> None:
        sys.settrace(None)
        self.tracing = False

    def _package(self, filename: str) -> str:
        pkg = self._file_package.get(filename)
        if pkg is None:
            pkg = self._file_package[filename] = package_of_file(filename)
        return pkg

    def profile(self, frame: Any, event: str, arg: Any) -> None:
        if not self.profiling:
            if not self.armed:
                sys.setprofile(None)  # counting is over: unhook this thread for the timing loop
            return
        tid = threading.get_ident()
        if tid != self._segment_thread:  # another thread runs now: a new stretch begins
            self._segment_thread, self._segment_counted = tid, tid == self.origin
        if event == "call":
            package = self._package(frame.f_code.co_filename)
            self.counts.calls[package] += 1
            if not self._segment_counted and package not in ("stdlib", "driver"):
                self._segment_counted = True
                # A Thread subclass's own run() starting (anyio's worker: it sets itself up
                # and waits for its first job) is not work handed over; the job is, later.
                # Nor is the same job resumed after the thread waited (a bridge's worker
                # waiting on the event loop): the frame that began the hop is still below.
                if frame.f_back is None or frame.f_back.f_code is not _THREAD_START:
                    job = self._jobs.get(tid)
                    if job is None or not _beneath(frame, job):
                        self._jobs[tid] = frame
                        self.counts.thread_hops += 1  # work handed over to this thread: one hop
        elif event == "c_call":
            self.counts.c_calls[package_of_c_function(arg, frame.f_code.co_filename)] += 1

    def trace(self, frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
        if not self.tracing:
            if not self.armed:
                sys.settrace(None)
            return None
        return self._trace_lines

    def _trace_lines(self, frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "line" and self.tracing:
            filename = frame.f_code.co_filename
            pkg = self._package(filename)
            self.lines_of(pkg).add((filename, frame.f_lineno))
            self.counts.line_events[pkg] += 1
        return self._trace_lines

    def lines_of(self, pkg: str) -> set[tuple[str, int]]:
        return self.counts.lines.setdefault(pkg, set())


def _beneath(frame: Any, ancestor: Any, limit: int = 80) -> bool:
    """Is ``ancestor`` on ``frame``'s stack (the frame itself or one of its callers)?"""
    while frame is not None and limit:
        if frame is ancestor:
            return True
        frame, limit = frame.f_back, limit - 1
    return False


# --- the minimal drivers ---------------------------------------------------------------------------------------------


def _head(endpoint: Endpoint) -> RequestHead:
    """The request head a parser would produce for ``endpoint``'s request."""
    req = endpoint.request
    headers = [(b"host", b"127.0.0.1:8000")]
    if req.body or req.method == "POST":
        headers += [(b"content-type", req.content_type.encode()), (b"content-length", str(len(req.body)).encode())]
    return RequestHead(req.method.encode(), req.path.encode(), b"1.1", headers)


class WSGICall:
    """One prebuilt WSGI request, callable over and over (PEP 3333)."""

    def __init__(self, app: Any, endpoint: Endpoint) -> None:
        self.app = app
        req = endpoint.request
        self.body = req.body
        # The servers' own environ builder, on the head a parser would produce (the wsgi.input is per request).
        self.environ = build_environ(
            _head(endpoint), server=("127.0.0.1", 8000), client=("127.0.0.1", 50000), wsgi_input=None
        )
        self.status = ""

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        self.status = status
        return self._write

    def _write(self, data: bytes) -> None:  # PEP 3333's legacy write(); counted like a body chunk
        self.size += len(data)

    def __call__(self) -> int:
        environ = dict(self.environ)  # an app may write to its environ; each request gets a fresh one
        environ["wsgi.input"] = io.BytesIO(self.body)
        self.size = 0
        result = self.app(environ, self._start_response)
        try:
            for chunk in result:
                self.size += len(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return int(self.status[:3])


class ASGICall:
    """One prebuilt ASGI HTTP request, awaited over and over on the caller's event loop."""

    def __init__(self, app: Any, endpoint: Endpoint, state: dict[str, Any]) -> None:
        self.app = app
        req = endpoint.request
        # The servers' own scope builder; the lifespan state is copied in per request below.
        self.scope = http_scope(_head(endpoint), server=("127.0.0.1", 8000), client=("127.0.0.1", 50000), state=None)
        self.state = state
        self.body = req.body

    async def __call__(self) -> int:
        scope = dict(self.scope)
        scope["headers"] = list(self.scope["headers"])
        scope["state"] = dict(self.state)  # lifespan spec: each request gets a shallow copy of the state
        finished = asyncio.get_running_loop().create_future()
        pending = [{"type": "http.request", "body": self.body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await finished  # ASGI: receive() waits; after the response, the client is "gone"
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                if not finished.done():
                    finished.set_result(None)

        await self.app(scope, receive, send)
        return status


class Lifespan:
    """The ASGI lifespan protocol on the caller's loop, as the servers run it (``servers/lifespan.py``)."""

    def __init__(self, app: Any) -> None:
        self.runner = LifespanRunner(app)
        self.state = self.runner.state
        self.supported = False

    async def startup(self) -> None:
        outcome = await self.runner.startup(30)
        if outcome.failed is not None:
            raise LayercakeError(f"lifespan startup failed: {outcome.failed}")
        self.supported = outcome.supported

    async def shutdown(self) -> None:
        if self.supported:
            await self.runner.shutdown(10)


# --- measuring one layer ---------------------------------------------------------------------------------------------


@dataclass
class EndpointCost:
    layer: str
    endpoint: str
    status: int
    us_per_request: dict[str, Any]  # median, min, max, n (batches); cpu: the same in CPU time, when asked
    counters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ANY_STATUS = 0  # an app_endpoint's status: the contract does not apply, any answer is the app's


def app_endpoint(request: str) -> Endpoint:
    """``"/hello"`` or ``"POST /items"``: a request to a user's own app, taken as it answers."""
    method, _, path = request.strip().rpartition(" ")
    method = (method.strip() or "GET").upper()
    if not path.startswith("/"):
        raise LayercakeError(f"--path takes [METHOD] /PATH, not {request!r}", 2)
    return Endpoint(f"{method} {path}", Request(method, path), ANY_STATUS, lambda _body: None, "your app's route")


def endpoint_for(name: str) -> Endpoint:
    """A contract endpoint by name, or a request to a user's app (``GET /hello``)."""
    return ENDPOINTS[name] if name in ENDPOINTS else app_endpoint(name)


def _load(name: str, interface: str | None) -> tuple[str, Any]:
    """A layer by name; ``LAYER@asgi`` / ``LAYER@wsgi``: the layer through its a2wsgi bridge
    (``servers/bridges.py``, as a server of the other interface runs it); or any app by
    ``module:attr`` with its interface (for tests and experiments)."""
    if ":" in name:
        import importlib

        if interface not in ("wsgi", "asgi"):
            raise LayercakeError(f"{name}: an import string needs its interface (wsgi or asgi)", 2)
        module, _, attr = name.partition(":")
        return interface, getattr(importlib.import_module(module), attr)
    from layers import get_layer

    layer_name, _, via = name.partition("@")
    layer = get_layer(layer_name)
    if not via or via == layer.interface:
        return layer.interface, layer.load()
    from servers import bridges

    if via == "asgi":
        return "asgi", bridges.wsgi_to_asgi(layer.load())
    if via == "wsgi":
        return "wsgi", bridges.asgi_to_wsgi(layer.load())
    raise LayercakeError(f"{name}: after @ comes the interface to bridge to, wsgi or asgi", 2)


def bridged_name(layer: str) -> str:
    """``flask`` -> ``flask@asgi``: the layer measured through the bridge to the other interface."""
    from layers import get_layer

    return f"{layer}@{'asgi' if get_layer(layer).interface == 'wsgi' else 'wsgi'}"


class _Runner:
    """Calls one request of one layer: synchronously for WSGI, on a private loop for ASGI."""

    def __init__(self, layer_name: str, interface: str | None = None, app: Any = None) -> None:
        if app is not None and interface is None:
            raise LayercakeError(f"{layer_name}: an app object needs its interface (wsgi or asgi)", 2)
        self.interface, self.app = (interface, app) if app is not None else _load(layer_name, interface)
        self.bridged = "@" in layer_name
        self.loop: asyncio.AbstractEventLoop | None = None
        if self.interface == "asgi":
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.lifespan = Lifespan(self.app)
            self.loop.run_until_complete(self.lifespan.startup())

    def call_for(self, endpoint: Endpoint) -> Callable[[int], int]:
        """A function making ``n`` requests and returning the last status."""
        if self.loop is None:
            call = WSGICall(self.app, endpoint)

            def run_wsgi(n: int) -> int:
                status = 0
                for _ in range(n):
                    status = call()
                return status

            return run_wsgi
        acall = ASGICall(self.app, endpoint, self.lifespan.state)
        loop = self.loop

        async def many(n: int) -> int:
            status = 0
            for _ in range(n):
                status = await acall()
            return status

        return lambda n: loop.run_until_complete(many(n))

    def counted(self, endpoint: Endpoint, hooks: _Hooks) -> Counts:
        """One request under each counter in turn: profile, trace, tracemalloc."""
        hooks.counts = Counts()
        run = self.call_for(endpoint)
        bracket: _SyncBracket | _AsyncBracket
        if self.loop is None:
            bracket = _SyncBracket(run, settle=self.bridged)
        else:
            bracket = _AsyncBracket(self.app, endpoint, self.lifespan.state, self.loop)
        gc.collect()
        gc.disable()
        # Threads switch only when one blocks, never on the 5 ms timer: a request that hands
        # work to a thread pool (FastAPI's plain ``def`` endpoints) then interleaves the same way
        # every time -- the loop thread runs until it waits in select(), the worker until it
        # waits for its next job -- instead of however the timer happened to fall.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(100.0)
        try:
            bracket.run(hooks.arm_profile, hooks.disarm_profile)
            bracket.run(hooks.arm_trace, hooks.disarm_trace)
            tracemalloc.start()
            try:
                marks: dict[str, int] = {}

                def begin() -> None:
                    tracemalloc.reset_peak()
                    marks["before"] = tracemalloc.get_traced_memory()[0]

                def end() -> None:
                    current, peak = tracemalloc.get_traced_memory()
                    marks["net"], marks["peak"] = current - marks["before"], peak - marks["before"]

                bracket.run(begin, end)
            finally:
                tracemalloc.stop()
        finally:
            sys.setswitchinterval(switch_interval)
            gc.enable()
        hooks.counts.peak_bytes, hooks.counts.net_bytes = marks["peak"], marks["net"]
        return hooks.counts

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.lifespan.shutdown())
            self.loop.close()


class _SyncBracket:
    def __init__(self, run: Callable[[int], int], settle: bool) -> None:
        self.run_n, self.settle = run, settle

    def run(self, begin: Callable[[], Any], end: Callable[[], Any]) -> None:
        begin()
        try:
            self.run_n(1)
            if self.settle:  # the ASGI->WSGI bridge's loop thread finishes after the response (see _AsyncBracket)
                time.sleep(SETTLE)
        finally:
            end()


class _AsyncBracket:
    """Switch the counters on and off *inside* the coroutine, so the event loop's own
    run_until_complete scaffolding is not counted -- only what the request makes the
    loop do (tasks the app spawns, a thread pool hand-off) is."""

    def __init__(self, app: Any, endpoint: Endpoint, state: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.call = ASGICall(app, endpoint, state)
        self.loop = loop

    def run(self, begin: Callable[[], Any], end: Callable[[], Any]) -> None:
        async def once() -> None:
            begin()
            try:
                await self.call()
                # A thread-pool worker may still be finishing its job's tail (task_done, then
                # waiting for the next job) when the response is complete.  Give it the GIL
                # until it blocks, so that tail is counted every time, not when the race says.
                time.sleep(SETTLE)
            finally:
                end()

        self.loop.run_until_complete(once())


def time_requests(run: Callable[[int], int], seconds: float, batch: int = 50, cpu: bool = False) -> dict[str, Any]:
    """Median µs per request over batches for about ``seconds`` (at least 3 batches).

    ``cpu``: also the process's CPU time per request (``time.process_time``, all threads),
    as ``"cpu": {median, min, max}`` -- on a shared machine it moves much less than the
    wall clock, which also counts the time other processes had the CPU.
    """
    samples: list[float] = []
    cpu_samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        started, cpu_started = time.perf_counter(), time.process_time()
        run(batch)
        samples.append((time.perf_counter() - started) / batch * 1e6)
        cpu_samples.append((time.process_time() - cpu_started) / batch * 1e6)
    result: dict[str, Any] = {
        "median": round(statistics.median(samples), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "n": len(samples),
    }
    if cpu:
        result["cpu"] = {
            "median": round(statistics.median(cpu_samples), 2),
            "min": round(min(cpu_samples), 2),
            "max": round(max(cpu_samples), 2),
        }
    return result


def measure_layer(
    layer_name: str,
    endpoints: Iterable[str | Endpoint] = LADDER_ENDPOINTS,
    seconds: float = 0.5,
    count: bool = True,
    interface: str | None = None,
    app: Any = None,
    cpu: bool = False,
    timed: bool = True,
) -> list[EndpointCost]:
    """Measure one layer in *this* process.  Prefer :func:`measure` (a fresh subprocess per layer).

    ``endpoints`` may hold :class:`Endpoint` objects as well as names (``layercake anatomy``
    measures requests of its own); ``app``, with ``interface``: measure this application
    object instead of loading ``layer_name``, which then only names it in the results;
    ``cpu``: also CPU time per request (see :func:`time_requests`); ``timed=False``: the
    counters only (``layercake anatomy`` times its steps interleaved, afterwards).
    """
    hooks = _Hooks()
    if count:
        threading.setprofile(hooks.profile)
        threading.settrace(hooks.trace)
    runner = _Runner(layer_name, interface, app)
    results = []
    measured: list[Endpoint] = []
    try:
        for name in endpoints:
            endpoint = name if isinstance(name, Endpoint) else endpoint_for(name)
            measured.append(endpoint)
            run = runner.call_for(endpoint)
            status = run(WARMUP)
            if status != endpoint.status and endpoint.status != ANY_STATUS:
                raise LayercakeError(
                    f"{layer_name} answered {endpoint.label} with {status}, expected "
                    f"{endpoint.status}: fix the layer (layercake verify {layer_name}) before "
                    "measuring it"
                )
            counters = runner.counted(endpoint, hooks).to_dict() if count else {}
            results.append(EndpointCost(layer_name, endpoint.name, status, {}, counters))
        hooks.armed = False  # from here each thread's hooks remove themselves at their next event
        threading.setprofile(None)
        threading.settrace(None)
        for result, endpoint in zip(results, measured, strict=True) if timed else ():
            result.us_per_request = time_requests(runner.call_for(endpoint), seconds, cpu=cpu)
    finally:
        runner.close()
    return results


def measure(
    layer_name: str,
    endpoints: Iterable[str] = LADDER_ENDPOINTS,
    seconds: float = 0.5,
    count: bool = True,
    timeout: float = 300.0,
    interface: str | None = None,
    env: dict[str, str] | None = None,
) -> list[EndpointCost]:
    """Measure one layer in a fresh subprocess (isolated imports and caches: see the module docs).

    ``layer_name`` may also be a ``module:attr`` import string, with ``interface``; then
    ``endpoints`` may be requests (``GET /hello``) and ``env`` the app's (``UserApp.env()``).
    """
    endpoints = list(endpoints)
    named = [e for e in endpoints if e in ENDPOINTS]
    command = [
        sys.executable,
        "-m",
        "layercake.bench.costs",
        layer_name,
        "--endpoints",
        ",".join(named),
        "--seconds",
        f"{seconds:g}",
    ] + ([] if count else ["--no-count"])
    for request in endpoints:
        if request not in ENDPOINTS:
            command += ["--request", request]  # one argument each: a query string may hold commas
    if interface:
        command += ["--interface", interface]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=PROJECT, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise LayercakeError(f"in-process measurement of {layer_name} failed:\n{tail}")
    return [EndpointCost(**row) for row in json.loads(done.stdout)]


@dataclass
class LadderRow:
    """One rung of :func:`quick_ladder`: a layer's cost for one endpoint, in-process."""

    layer: str
    interface: str
    endpoint: str
    us: float  # median µs per request
    calls: int  # Python calls per request
    c_calls: int
    lines: int  # distinct source lines executed
    by_package: dict[str, dict[str, int]]
    ratio_to_bare: float  # µs against the bare layer of the same interface

    @property
    def calls_by_package(self) -> dict[str, int]:
        return {p: n["calls"] for p, n in self.by_package.items() if n["calls"]}


def quick_ladder(
    seconds_per_layer: float = 0.3,
    endpoint: str = "json",
    layers: Iterable[str] | None = None,
    on_row: Callable[[LadderRow], None] | None = None,
) -> list[LadderRow]:
    """The ladder in-process, for ``layercake tour``: per layer, µs and calls for one endpoint.

    Each layer is measured in its own subprocess (about a second each, mostly imports),
    in ladder order; ``on_row`` is called as each row is ready, for a progress display.
    """
    from layers import LAYERS

    rows: list[LadderRow] = []
    bare: dict[str, float] = {}
    for name in layers or LAYERS:
        layer = LAYERS[name]
        (cost,) = measure(name, [endpoint], seconds_per_layer)
        c = cost.counters
        us = cost.us_per_request["median"]
        bare.setdefault(layer.interface, us)
        row = LadderRow(
            name,
            layer.interface,
            endpoint,
            us,
            c["calls"],
            c["c_calls"],
            c["lines"],
            c["by_package"],
            round(us / bare[layer.interface], 2),
        )
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def inprocess_document(
    layers: Iterable[str] | None = None,
    endpoints: Iterable[str] = LADDER_ENDPOINTS,
    seconds: float = 0.5,
    command: str = "",
    progress: Callable[[str, int, int], None] | None = None,
    bridged: bool = False,
) -> dict[str, Any]:
    """Measure every layer in-process; the results document (kind ``in_process``, see ``report.SCHEMA``).

    ``bridged``: also each layer through its a2wsgi bridge (rows named ``LAYER@asgi`` / ``LAYER@wsgi``).
    """
    from layercake.bench.environment import describe, now_utc
    from layers import LAYERS, get_layer

    names = list(layers or LAYERS)
    endpoints = list(endpoints)
    # Names are the user's to get right: refuse a typo before measuring anything (an
    # unknown endpoint used to surface as a KeyError inside each layer's subprocess,
    # reported as "not measured" with exit status 0).
    for name in names:
        get_layer(name.partition("@")[0])
    for name in endpoints:
        get_endpoint(name)
    if bridged:
        names += [bridged_name(n) for n in names if "@" not in n]
    started, t0 = now_utc(), time.monotonic()
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    partial: dict[str, Any] | None = None
    try:  # Ctrl-C keeps the layers measured so far (layercake.progress: the document says "partial")
        for i, name in enumerate(names):
            if progress:
                progress(f"in-process: {name}", i, len(names))
            layer = get_layer(name.partition("@")[0])
            interface = name.partition("@")[2] or layer.interface
            try:
                costs = measure(name, endpoints, seconds)
            except LayercakeError as exc:  # one broken layer must not cost the others their figures
                failures.append(f"{name}: {exc.message}")
                continue
            bridge = f"{layer.interface}->{interface}" if interface != layer.interface else None
            # A bridge hands every request between threads that give up the GIL for I/O (the
            # loop's self-pipe, the bridge's queues), and where the OS scheduler then switches
            # varies: its counters are close across runs (within a few percent), not identical.
            # So does a request that hops threads on its own (Django on ASGI starts a thread per
            # request): its counts are close across runs, not identical.
            rows.extend(
                {
                    **cost.to_dict(),
                    "interface": interface,
                    "bridge": bridge,
                    "exact": bridge is None and not cost.counters.get("thread_hops"),
                }
                for cost in costs
            )
    except KeyboardInterrupt:
        partial = {
            "interrupted": "Ctrl-C",
            "done": len({r["layer"] for r in rows}),
            "total": len(names),
            "what": "layers",
        }
    if progress and partial is None:
        progress("done", len(names), len(names))
    bare = {(r["interface"], r["endpoint"]): r for r in rows if r["layer"] in ("bare_wsgi", "bare_asgi")}
    native = {(r["layer"], r["endpoint"]): r for r in rows if r["bridge"] is None}
    for r in rows:
        b = bare.get((r["interface"], r["endpoint"]))
        n = native.get((r["layer"].partition("@")[0], r["endpoint"])) if r["bridge"] else None
        r["ratio_to_bare"] = {
            "us": round(r["us_per_request"]["median"] / b["us_per_request"]["median"], 3) if b else None,
            "calls": round(r["counters"]["calls"] / b["counters"]["calls"], 3)
            if b and b["counters"]["calls"]
            else None,
            # through a bridge: against the same layer served natively
            "native_us": round(r["us_per_request"]["median"] / n["us_per_request"]["median"], 3) if n else None,
        }
    return {
        "schema": "layercake.bench/1",
        "kind": "in_process",
        "command": command,
        "measured_at": started,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "environment": describe(),
        "settings": {
            "endpoints": endpoints,
            "seconds_per_endpoint": seconds,
            "warmup_requests": WARMUP,
            "counted_requests": 1,
            "event_loop": "asyncio (stdlib)",
            # the Django layers' middleware (layercake --django-middleware), inherited by every subprocess
            "django_middleware": os.environ.get("LAYERCAKE_DJANGO_MIDDLEWARE") or "none",
        },
        "in_process": rows,
        "failures": failures,
        **({"partial": partial} if partial else {}),
    }


def app_document(
    app: Any,
    requests: Iterable[str],
    seconds: float = 0.5,
    command: str = "",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """A user's app (:class:`layercake.apps.UserApp`) measured in-process: a document like
    :func:`inprocess_document`'s, one row per request, with no ratio to a bare layer."""
    from layercake.bench.environment import describe, now_utc

    requests = [endpoint_for(r).name for r in requests] or ["GET /"]
    started, t0 = now_utc(), time.monotonic()
    if progress:
        progress(f"in-process: {app.name}", 0, 1)
    failures: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        costs = measure(app.target, requests, seconds, interface=app.interface, env=app.env())
    except LayercakeError as exc:
        failures.append(f"{app.name}: {exc.message}")
        costs = []
    for cost in costs:
        row = {**cost.to_dict(), "layer": app.name, "interface": app.interface, "bridge": None, "exact": True}
        row["ratio_to_bare"] = {"us": None, "calls": None, "native_us": None}
        rows.append(row)
    if progress:
        progress("done", 1, 1)
    return {
        "schema": "layercake.bench/1",
        "kind": "in_process",
        "command": command,
        "measured_at": started,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "environment": describe(),
        "settings": {
            "endpoints": requests,
            "seconds_per_endpoint": seconds,
            "warmup_requests": WARMUP,
            "counted_requests": 1,
            "event_loop": "asyncio (stdlib)",
            "app": app.target,
        },
        "in_process": rows,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m layercake.bench.costs", description="Measure one layer in-process; prints JSON."
    )
    parser.add_argument("layer")
    parser.add_argument("--endpoints", default=",".join(LADDER_ENDPOINTS))
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--no-count", action="store_true")
    parser.add_argument("--interface", choices=("wsgi", "asgi"), help="with a module:attr instead of a layer")
    parser.add_argument("--request", action="append", default=[], help="[METHOD] /PATH to a module:attr app")
    args = parser.parse_args(argv)
    results = measure_layer(
        args.layer,
        [e for e in args.endpoints.split(",") if e] + args.request,
        args.seconds,
        count=not args.no_count,
        interface=args.interface,
    )
    json.dump([r.to_dict() for r in results], sys.stdout)


if __name__ == "__main__":
    main()
