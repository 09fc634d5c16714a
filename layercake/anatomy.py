"""Cost anatomy: what each feature of a framework costs, one feature per step.

Theory of operation
-------------------
The ladder (``layercake bench``) says FastAPI costs several times bare ASGI per
request, and Flask several times bare WSGI -- but not *which* abstraction costs what.
An anatomy answers that.  For one layer it is a ladder of variants of one endpoint,
each a real, small app in ``layers/<layer>/anatomy.py`` that adds exactly **one**
feature over the step before it (a router, a validated ``Query``, a ``Depends``, a
middleware ...), and every variant gives the same answer to the same request.  So the
difference between two neighbouring steps is what that one feature costs.

For each step, in a process of its own (a fork of one helper that imported the
frameworks once, so no step inherits another's state: see :class:`StepHelper`):

1. the app is built and sent the ladder's request once in-process, through
   ``wsgiref.validate`` for WSGI; status, ``Content-Type`` and the JSON body must be the
   ladder's answer, or the step is not measured (a fast wrong answer is no figure);
2. :func:`layercake.bench.costs.measure_layer` counts it exactly as ``bench
   --in-process`` counts a layer: Python calls, C calls and distinct lines run, by
   package -- counters that are deterministic, identical across runs (see that module);
3. once every step is counted, all are timed *interleaved* -- five rounds, each step a
   short window per round -- in CPU time per request, and a step's figure is its best
   batch (:func:`figure` says why; the median of its windows is kept beside it);
4. with ``--server NAME``, the same app is started on a real server (pinned to one CPU,
   wrk on the other), checked over HTTP, and loaded briefly: req/s and p99.

The document (:func:`anatomy_document`, schema ``layercake.anatomy/1``) holds every
step with its **delta over the previous step**; :func:`markdown`, :func:`chart` (a
waterfall: each bar starts where the step before ended and is as long as the step's
added cost) and the CLI's table are views of it.

Registering a ladder (for a new layer, e.g. Django)
---------------------------------------------------
Write ``layers/<layer>/anatomy.py`` that ends with a module-level ``LADDER``::

    from layercake.anatomy import ITEM_ANSWER, ITEM_REQUEST, Ladder, Step, serve_steps

    def bare_wsgi(): ...          # each variant: a function that builds and returns the app;
    def django_view(): ...        # its docstring's first line says the one thing it adds

    LADDER = Ladder("django", "wsgi", ITEM_REQUEST, ITEM_ANSWER, (
        Step(bare_wsgi, adds="..."),  # the first step is the baseline
        Step(django_view, adds="django"),
    ))
    __getattr__ = serve_steps(LADDER)  # `layers.django.anatomy:django_view_app` is the app, for servers

Nothing else is edited: :func:`ladders` finds every ``layers/*/anatomy.py`` that defines
``LADDER`` (without importing it; the ladder's name is its folder's), and ``layercake
anatomy django``, the site (``anatomy/django.html``, once ``--out docs/anatomy`` has
written a run) and the tests (``tests/layers/test_anatomy_variants.py`` is parametrised
over :func:`ladders`: every variant's answer in-process and on a real server, one
feature per step) pick it up.  A step may reuse another layer's variant (``bare_asgi``
starts both the Starlette and the FastAPI ladders).  A step either ``adds=`` a feature
or ``removes=`` one that an earlier step brought -- ``includes=`` names the defaults a
feature brings along, so later steps can remove them (``FastAPI()``'s telemetry check
and docs routes) -- and ``threads=True`` marks the first step that hands work to a
worker thread (its stdlib counts then vary by a few between runs).

What it deliberately doesn't do: compare layers with each other (that is ``bench``), or
time anything inside a request (``layercake trace`` shows where inside a step the
calls go).  Timings are noisy on a shared machine; the counters are not.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layercake.bench.endpoints import Endpoint
from layercake.bench.loadgen import Request
from layercake.errors import LayercakeError, UnknownName

PROJECT = Path(__file__).resolve().parents[1]
LAYERS_DIR = PROJECT / "layers"
SCHEMA = "layercake.anatomy/1"
DEFAULT_SECONDS = 0.5  # timing per step, over all its windows: 16 FastAPI steps in well under a minute
ROUNDS = 5  # interleaved timing windows per step (see StepHelper)
SERVER_CONCURRENCY = 16
SERVER_DURATION = 1  # wrk's whole seconds

# --- the request every variant answers, and the answer ----------------------------------------------------------------

#: FastAPI's own tutorial shape ("Request Body + Path + Query parameters"): one request
#: that exercises a path parameter, a query parameter and a JSON body, so every feature
#: of a ladder has something to do, and every variant -- by hand or by framework --
#: answers it the same.
ITEM_BODY = b'{"name":"cake","price":9.5}'
ITEM_REQUEST = Request("PUT", "/items/42?q=cake", ITEM_BODY, "application/json")
#: The same item as an HTML form post: Werkzeug's ladder ends in its form parser.
FORM_REQUEST = Request("PUT", "/items/42?q=cake", b"name=cake&price=9.5", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Answer:
    """What every variant of a ladder must answer: status, media type, and the JSON value.

    The JSON is compared as a value, not as bytes: Flask's ``jsonify`` sorts keys and ends
    with a newline, FastAPI keeps field order and none -- both are the same answer.
    """

    status: int
    content_type: str
    json: Any

    def problem(self, status: int, content_type: str, body: bytes) -> str | None:
        """None when the response is this answer; else what is wrong, readably."""
        if status != self.status:
            return f"status {status}, expected {self.status} (body {body[:120]!r})"
        if content_type.split(";")[0].strip().lower() != self.content_type:
            return f"Content-Type {content_type!r}, expected {self.content_type}"
        try:
            value = json.loads(body)
        except ValueError:
            return f"body is not JSON: {body[:120]!r}"
        if value != self.json:
            return f"body {value!r}, expected {self.json!r}"
        return None


ITEM_ANSWER = Answer(200, "application/json", {"item_id": 42, "name": "cake", "price": 9.5, "q": "cake"})


# --- the registry: ladders of steps, as data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One variant: a function that builds the app, and the one feature it changes.

    ``adds`` names the feature this step brings over the previous one; ``removes`` one
    that an earlier step brought (exactly one of the two).  The function's docstring
    says in its first line what that is, and below it how the feature works.
    """

    build: Callable[[], Any]
    adds: str | None = None
    removes: str | None = None
    #: Defaults that come with the feature added here, named so a later step can remove
    #: them one at a time (``FastAPI()`` brings its telemetry check and docs routes).
    includes: tuple[str, ...] = ()
    #: This step hands work to a worker thread (and so does every step after it).  Where
    #: the OS switches threads then varies a little: the stdlib's calls (threading's locks
    #: and waits) can differ by a few between runs, and so can the lines run by the stdlib
    #: and by anyio (a worker that finds its queue empty or not).  Every package's calls
    #: and C calls but the stdlib's are exact.
    threads: bool = False

    @property
    def key(self) -> str:
        return self.build.__name__

    @property
    def change(self) -> str:
        return f"+{self.adds}" if self.adds else f"-{self.removes}"

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.build) or ""

    @property
    def title(self) -> str:
        """The docstring's first sentence (what the step adds), without its full stop."""
        first = self.doc.split("\n\n", 1)[0].replace("\n", " ").strip().rstrip(".")
        return first.replace("``", "`")  # reST literals in the docstring, markdown ones in reports

    @property
    def source(self) -> tuple[Path, int, int]:
        """The file and the first and last line of the variant's function."""
        lines, first = inspect.getsourcelines(self.build)
        return Path(inspect.getsourcefile(self.build) or ""), first, first + len(lines) - 1

    def code(self) -> list[tuple[int, str]]:
        """The function's code below its docstring: the lines that build this variant."""
        path, first, last = self.source
        text = path.read_text(encoding="utf-8").splitlines()
        func = ast.parse("\n".join(text[first - 1 : last]).strip("\n") + "\n").body[0]
        body = getattr(func, "body", [])
        start = first
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            start = first + body[0].end_lineno  # type: ignore[operator]  # after the docstring
        return [(n, text[n - 1]) for n in range(start, last + 1) if text[n - 1].strip()]


@dataclass(frozen=True)
class Ladder:
    """One layer's anatomy: steps in order, the interface they speak, the request and answer."""

    layer: str
    interface: str  # "wsgi" | "asgi"
    request: Request
    answer: Answer
    steps: tuple[Step, ...]
    title: str = ""  # one line for reports ("FastAPI, feature by feature")

    def __post_init__(self) -> None:
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.layer}: two steps share a name: {keys}")
        for s in self.steps:
            if (s.adds is None) == (s.removes is None):
                raise ValueError(f"{self.layer}:{s.key}: a step adds one feature or removes one")

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise UnknownName(f"{self.layer} anatomy step", key, [s.key for s in self.steps])

    def features(self) -> list[frozenset[str]]:
        """The features present at each step, folded from the changes."""
        present: set[str] = set()
        out = []
        for s in self.steps:
            present = present | {s.adds, *s.includes} if s.adds else present - {s.removes}
            out.append(frozenset(present))
        return out

    def threaded(self) -> list[bool]:
        """Per step: does a request hand work to a worker thread (this step or an earlier one)?"""
        out, seen = [], False
        for s in self.steps:
            seen = seen or s.threads
            out.append(seen)
        return out

    @property
    def module(self) -> str:
        return f"layers.{self.layer}.anatomy"

    def endpoint(self) -> Endpoint:
        """The ladder's request as a bench endpoint, for :func:`layercake.bench.costs.measure_layer`."""
        answer = self.answer

        def check(body: bytes) -> str | None:
            return answer.problem(answer.status, answer.content_type, body)

        return Endpoint(f"anatomy-{self.layer}", self.request, answer.status, check, f"{self.layer} anatomy")


def serve_steps(ladder: Ladder) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) so ``layers.X.anatomy:STEP_app`` is the built app.

    Servers take ``module:attr``; a step's function builds its app, so the module hands
    out ``<step>_app`` on first use -- import strings every server understands.
    """
    built: dict[str, Any] = {}

    def module_getattr(name: str) -> Any:
        key = name.removesuffix("_app")
        if name.endswith("_app") and any(s.key == key for s in ladder.steps):
            if key not in built:
                built[key] = ladder.step(key).build()
            return built[key]
        raise AttributeError(f"module {ladder.module!r} has no attribute {name!r}")

    return module_getattr


def ladders() -> dict[str, str]:
    """Every registered anatomy: layer name -> ``module:LADDER``, without importing any.

    A layer registers by having ``layers/<layer>/anatomy.py`` with a top-level ``LADDER``
    (see the module docs).  The order is the ladder's (:data:`layers.LAYERS`), then the rest.
    """
    from layers import LAYERS

    found = {}
    for path in sorted(LAYERS_DIR.glob("*/anatomy.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defines = any(
            isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LADDER" for t in node.targets)
            for node in tree.body
        )
        if defines:
            found[path.parent.name] = f"layers.{path.parent.name}.anatomy:LADDER"
    order = [n for n in LAYERS if n in found] + sorted(n for n in found if n not in LAYERS)
    return {n: found[n] for n in order}


def get_ladder(layer: str) -> Ladder:
    import importlib

    registry = ladders()
    if layer not in registry:
        raise UnknownName("anatomy", layer, registry)
    module, _, attr = registry[layer].partition(":")
    return getattr(importlib.import_module(module), attr)


# --- one request in-process, to check the answer --------------------------------------------------------------------


def call_once(interface: str, app: Any, request: Request) -> tuple[int, str, bytes]:
    """Send ``request`` to ``app`` once; its status, Content-Type and body.

    The same environ/scope the measurement uses (:mod:`layercake.bench.costs`), with a
    driver that keeps the body; WSGI goes through ``wsgiref.validate`` (PEP 3333's
    checker), so a variant that breaks the spec is caught here, not measured.
    """
    from layercake.bench.costs import ASGICall, WSGICall

    endpoint = Endpoint("check", request, 200, lambda b: None, "")
    if interface == "wsgi":
        from layercake.inprocess import validator  # wsgiref.validate, told about wsgi.input_terminated

        call = WSGICall(app, endpoint)
        environ = dict(call.environ, **{"wsgi.input": io.BytesIO(request.body)})
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            got["status"], got["headers"] = status, headers
            return lambda data: None

        with contextlib.redirect_stderr(io.StringIO()):  # validate warns on stderr
            result = validator(app)(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        headers = {k.lower(): v for k, v in got["headers"]}
        return int(got["status"][:3]), headers.get("content-type", ""), body
    import asyncio

    scope = dict(ASGICall(app, endpoint, {}).scope, state={})
    messages: list[dict[str, Any]] = []

    async def run() -> None:
        pending = [{"type": "http.request", "body": request.body, "more_body": False}]
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers.get("content-type", ""), body


# --- measuring one step (in a subprocess of its own) ----------------------------------------------------------------


def measure_step_here(layer: str, key: str, seconds: float = DEFAULT_SECONDS) -> dict[str, Any]:
    """Build, check and measure one step in *this* process; the step's row without deltas."""
    from layercake.bench.costs import measure_layer

    ladder = get_ladder(layer)
    step = ladder.step(key)
    app = step.build()
    status, content_type, body = call_once(ladder.interface, app, ladder.request)
    row: dict[str, Any] = {
        "step": step.key,
        "answer": {"status": status, "content_type": content_type, "body": body.decode("utf-8", "replace")},
        "problem": ladder.answer.problem(status, content_type, body),
    }
    if row["problem"] is None:
        (cost,) = measure_layer(
            f"{ladder.module}:{key}_app", [ladder.endpoint()], seconds, interface=ladder.interface, app=app, cpu=True
        )
        wall = dict(cost.us_per_request)
        cpu = wall.pop("cpu")
        # CPU time is the figure: on a machine shared with other work it moves far less
        # than the wall clock, which also counts the time other processes had the CPU.
        row["us_per_request"] = {**cpu, "n": wall["n"]}
        row["wall_us_per_request"] = wall
        row["counters"] = cost.counters
    return row


def count_step_here(layer: str, key: str) -> dict[str, Any]:
    """Build, check and count one step in *this* process: its row, without timing."""
    from layercake.bench.costs import measure_layer

    ladder = get_ladder(layer)
    step = ladder.step(key)
    app = step.build()
    status, content_type, body = call_once(ladder.interface, app, ladder.request)
    row: dict[str, Any] = {
        "step": step.key,
        "answer": {"status": status, "content_type": content_type, "body": body.decode("utf-8", "replace")},
        "problem": ladder.answer.problem(status, content_type, body),
    }
    if row["problem"] is None:
        (cost,) = measure_layer(
            f"{ladder.module}:{key}_app", [ladder.endpoint()], interface=ladder.interface, app=app, timed=False
        )
        row["counters"] = cost.counters
    return row


class _Timer:
    """One step's app on its own event loop, timed a window at a time (see :class:`StepHelper`)."""

    def __init__(self, layer: str, key: str) -> None:
        from layercake.bench.costs import WARMUP, _Runner

        ladder = get_ladder(layer)
        # A fresh app: the counted one has had its hooks and its lifespan already.
        self.runner = _Runner(f"{ladder.module}:{key}_app", ladder.interface, ladder.step(key).build())
        self.run = self.runner.call_for(ladder.endpoint())
        started = time.perf_counter()
        self.run(WARMUP)
        per_request = (time.perf_counter() - started) / WARMUP
        self.batch = max(1, min(50, int(0.005 / max(per_request, 1e-7))))  # batches of about 5 ms

    def window(self, seconds: float) -> dict[str, Any]:
        from layercake.bench.costs import time_requests

        return time_requests(self.run, seconds, batch=self.batch, cpu=True)


def combine_windows(windows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A step's timing from its interleaved windows: (CPU, wall), each the median of the
    windows' medians with the extremes of their batches."""

    def summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "best": min(f["min"] for f in figures),  # the figure: see figure()
            "median": round(statistics.median(f["median"] for f in figures), 2),
            "min": min(f["min"] for f in figures),
            "max": max(f["max"] for f in figures),
            "n": sum(w["n"] for w in windows),
            "windows": len(windows),
        }

    return summary([w["cpu"] for w in windows]), summary(windows)


class StepHelper:
    """A helper process that imports a ladder's frameworks once, forks a child per step,
    and times the steps interleaved.

    Importing FastAPI takes longer than measuring a step, and a ladder has sixteen.  So
    ``python -m layercake.anatomy LAYER --helper`` imports the ladder's module (and with
    it the frameworks) once; for each ``count STEP`` it reads on stdin it forks a child,
    which builds, checks and counts that step and reports back -- every step starting
    from the same state, modules imported and nothing built or warmed, as a fresh
    ``python`` would after the same imports.  The child then stays, idle, with a fresh
    copy of its app warmed up.

    ``time ROUNDS SECONDS`` then times them *interleaved*: round after round, each child
    times one short window (``SECONDS / ROUNDS``) in turn, and a step's figure is the
    median of its windows.  On a machine shared with other work the load comes and goes;
    timed one after the other, a step measured during a burst would look expensive and
    the next one cheap.  Interleaved, every step sees the same bursts.
    """

    def __init__(self, layer: str) -> None:
        import tempfile

        self.layer = layer
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "layercake.anatomy", layer, "--helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=PROJECT,
        )
        self.windows: dict[str, list[dict[str, Any]]] = {}

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline()
        except BrokenPipeError:
            return ""

    def _failure(self) -> str:
        self.stderr.seek(0)
        return "measuring failed:\n" + "\n".join(self.stderr.read().strip().splitlines()[-8:])

    def measure(self, key: str) -> dict[str, Any]:
        """Build, check and count ``key`` in a new child; its row (no timing yet)."""
        line = self._ask(f"count {key}")
        return json.loads(line) if line else {"step": key, "problem": self._failure()}

    def time(self, rounds: int, seconds: float, on_round: Callable[[int, int], None] = lambda r, n: None) -> None:
        """Time every counted step, interleaved; the windows accumulate in ``self.windows``
        (so Ctrl-C keeps the rounds already done)."""
        assert self.proc.stdout is not None
        line = self._ask(f"time {rounds} {seconds:g}")
        while line:
            message = json.loads(line)
            if message.get("done"):
                return
            for key, window in message["windows"].items():
                self.windows.setdefault(key, []).append(window)
            on_round(message["round"], rounds)
            line = self.proc.stdout.readline()
        raise LayercakeError(self._failure())

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # end of input: the helper ends its children and exits
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.stderr.close()

    def kill(self) -> None:
        """End the helper now (a second Ctrl-C, or a helper that did not end when asked)."""
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()

    def __enter__(self) -> StepHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_step(
    layer: str, key: str, seconds: float = DEFAULT_SECONDS, helper: StepHelper | None = None
) -> dict[str, Any]:
    """One step checked and counted in a process of its own (a fork of ``helper``); without
    a helper, also timed (in a helper of its own, as one step alone)."""
    if helper is not None:
        return helper.measure(key)
    with StepHelper(layer) as own:
        row = own.measure(key)
        if row.get("problem") is None:
            own.time(ROUNDS, seconds)
            row["us_per_request"], row["wall_us_per_request"] = combine_windows(own.windows[key])
    return row


def _child(layer: str, key: str, commands: int, results: int) -> None:
    """A step's process (forked by the helper): count, report, then time windows on request."""
    out = os.fdopen(results, "w")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what a framework prints must not reach our JSON
            row = count_step_here(layer, key)
        out.write(json.dumps(row) + "\n")
        out.flush()
        if row["problem"] is not None:
            return
        timer = _Timer(layer, key)
        for line in os.fdopen(commands):
            out.write(json.dumps(timer.window(float(line))) + "\n")
            out.flush()
    except BaseException as exc:  # noqa: BLE001 -- reported to the helper as the step's problem
        with contextlib.suppress(OSError):
            out.write(json.dumps({"step": key, "problem": f"measuring failed: {type(exc).__name__}: {exc}"}) + "\n")
            out.flush()
    finally:
        sys.stderr.flush()
        os._exit(0)  # leave without running the helper's exit handlers


def _serve_helper(layer: str) -> None:
    """The helper's loop (see :class:`StepHelper`)."""
    from layercake.bench import costs  # noqa: F401 -- imported once, before any fork

    get_ladder(layer)
    children: dict[str, tuple[int, Any, Any]] = {}  # step -> (pid, its commands, its results)

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        for line in sys.stdin:
            verb, *args = line.split()
            if verb == "count":
                (key,) = args
                cmd_r, cmd_w = os.pipe()
                res_r, res_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(cmd_w)
                    os.close(res_r)
                    for _pid, cmds, res in children.values():  # not the other steps' pipes
                        cmds.close()
                        res.close()
                    _child(layer, key, cmd_r, res_w)
                os.close(cmd_r)
                os.close(res_w)
                commands, results = os.fdopen(cmd_w, "w"), os.fdopen(res_r)
                row_line = results.readline()
                row = json.loads(row_line) if row_line else {"step": key, "problem": "the measuring process died"}
                if row.get("problem") is None:
                    children[key] = (pid, commands, results)
                else:
                    commands.close()
                    results.close()
                    os.waitpid(pid, 0)
                reply(row)
            elif verb == "time":
                rounds, seconds = int(args[0]), float(args[1])
                for r in range(rounds):
                    windows = {}
                    for key, (_pid, commands, results) in children.items():
                        commands.write(f"{seconds / rounds!r}\n")
                        commands.flush()
                        windows[key] = json.loads(results.readline())
                    reply({"round": r + 1, "windows": windows})
                reply({"done": True})
    finally:
        for pid, commands, results in children.values():
            with contextlib.suppress(OSError):
                commands.close()  # end of commands: the child exits
            results.close()
            os.waitpid(pid, 0)


def measure_on_server(ladder: Ladder, key: str, server: str) -> dict[str, Any]:
    """One step on a real server: start it, check the answer over HTTP, load it with wrk."""
    import httpx

    from layercake.bench import loadgen, runner
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    cpus = runner.can_pin()
    layer = next(name for name, iface in (("bare_wsgi", "wsgi"), ("bare_asgi", "asgi")) if iface == ladder.interface)
    opts = ServerOptions(port=0, app_target=f"{ladder.module}:{key}_app")
    with start_server(server, layer, opts) as running:
        if cpus and running.pid:
            runner.pin_process_tree(running.pid, cpus[0])
        req = ladder.request
        resp = httpx.request(
            req.method,
            running.url + req.path,
            content=req.body,
            headers={"content-type": req.content_type},
            timeout=10,
        )
        problem = ladder.answer.problem(resp.status_code, resp.headers.get("content-type", ""), resp.content)
        if problem:
            return {"server": server, "problem": problem}
        generator = loadgen.choose_generator("auto")
        result = loadgen.run_load(
            running.url,
            req,
            SERVER_CONCURRENCY,
            SERVER_DURATION,
            generator=generator,
            cpu=cpus[1] if cpus else None,
        )
    out: dict[str, Any] = {
        "server": server,
        "generator": generator,
        "concurrency": SERVER_CONCURRENCY,
        "duration_s": round(result.duration_s, 2),
        "rps": round(result.rps, 1),
        "p99_us": result.latency_us.get("p99"),
        "socket_errors": result.socket_errors,
        "non_2xx": result.non_2xx,
    }
    return out


# --- the whole ladder -----------------------------------------------------------------------------------------------


def _delta(a: float | int | None, b: float | int | None, digits: int = 2) -> float | int | None:
    if a is None or b is None:
        return None
    return round(a - b, digits) if isinstance(a, float) or isinstance(b, float) else a - b


@dataclass
class Progress:
    """What :func:`anatomy_document` reports as it goes (for a progress display)."""

    on_start: Callable[[int, int, Step], None] = lambda i, n, s: None
    on_row: Callable[[dict[str, Any]], None] = lambda row: None  # counted (timing comes after all are)
    on_round: Callable[[int, int], None] = lambda done, rounds: None  # a round of interleaved timing done


def anatomy_document(
    layer: str,
    seconds: float = DEFAULT_SECONDS,
    server: str | None = None,
    command: str = "",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure every step of ``layer``'s anatomy; the results document.

    Ctrl-C stops between (or inside) steps: the document then holds the steps measured
    so far and ``"interrupted": true``.
    """
    from layercake.bench.environment import describe, now_utc

    ladder = get_ladder(layer)
    if server is not None:
        from servers.registry import get_server

        spec = get_server(server)  # an unknown name lists the choices, before anything runs
        if spec.bridge_for(ladder.interface) is not None:  # type: ignore[arg-type]  # a ladder's interface is "wsgi" or "asgi"
            raise LayercakeError(
                f"{server} is not a{'n' if ladder.interface == 'asgi' else ''} {ladder.interface.upper()} server; "
                f"the {layer} anatomy needs one (a bridge would add its own cost to every step)",
                2,
            )
    progress = progress or Progress()
    started, t0 = now_utc(), time.monotonic()
    features = ladder.features()
    threaded = ladder.threaded()
    rows: list[dict[str, Any]] = []
    interrupted = False
    helper = None
    try:
        helper = StepHelper(layer)
        for i, step in enumerate(ladder.steps):
            progress.on_start(i, len(ladder.steps), step)
            row = measure_step(layer, step.key, seconds, helper=helper)
            if server is not None and row.get("problem") is None:
                try:
                    row["server"] = measure_on_server(ladder, step.key, server)
                except LayercakeError as exc:
                    row["server"] = {"server": server, "problem": exc.message}
            path, first, last = step.source
            row.update(
                index=i + 1,  # counted from 1, as the progress and the table show it
                title=step.title,
                change=step.change,
                features=sorted(features[i]),
                # exact: every counter is identical across runs; else see Step.threads
                exact=not threaded[i],
                doc=step.doc,
                source={"path": _relative(path), "first_line": first, "last_line": last},
            )
            rows.append(row)
            progress.on_row(row)
        helper.time(ROUNDS, seconds, progress.on_round)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if helper is not None:
            try:
                helper.close()
            except KeyboardInterrupt:  # another Ctrl-C while the helper ends: stop it now, keep what was measured
                interrupted = True
                helper.kill()
    for i, row in enumerate(rows):
        windows = helper.windows.get(row["step"]) if helper is not None else None
        if row.get("problem") is None:
            cpu, wall = combine_windows(windows) if windows else (None, None)
            # CPU time is the figure: on a machine shared with other work it moves far less
            # than the wall clock, which also counts the time other processes had the CPU.
            row["us_per_request"], row["wall_us_per_request"] = cpu, wall
        _add_deltas(row, rows[i - 1] if i else None)
    return {
        "schema": SCHEMA,
        "kind": "anatomy",
        "layer": layer,
        "interface": ladder.interface,
        "title": ladder.title,
        "command": command,
        "measured_at": started,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "interrupted": interrupted,
        "environment": describe(),
        "request": {
            "method": ladder.request.method,
            "path": ladder.request.path,
            "content_type": ladder.request.content_type,
            "body": ladder.request.body.decode(),
        },
        "answer": {
            "status": ladder.answer.status,
            "content_type": ladder.answer.content_type,
            "json": ladder.answer.json,
        },
        "settings": {
            "seconds_per_step": seconds,
            "interleaved_rounds": ROUNDS,
            "rounds_done": min((r["us_per_request"]["windows"] for r in rows if r.get("us_per_request")), default=0),
            "server": server,
            "counted_requests": 1,
            "clock": "CPU time of the process, all threads (time.process_time); wall clock in wall_us_per_request",
            "figure": "us_per_request.best: the fastest batch (layercake.anatomy.figure)",
        },
        "steps": rows,
        "headline": headline_of(rows, ladder),
    }


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(PROJECT).as_posix()
    except ValueError:
        return str(path)


def figure(row: dict[str, Any]) -> float | None:
    """A step's µs per request: its best batch in CPU time (None when not timed: a problem, or Ctrl-C first).

    Why the best batch and not the median: on a machine shared with other work (this one
    runs at load 8-13 on 2 CPUs while several engineers benchmark), a batch's CPU time
    still grows when another process shares the core or the caches, so the median of
    batches measures the neighbours as much as the code -- neighbouring steps differed by
    hundreds of µs with identical call counts.  The fastest batch is the closest to the
    code's own cost (timeit's documentation makes the same argument), and the best
    batches agree with the deterministic counters step after step.  The median and the
    range stay in the document beside it.
    """
    return (row.get("us_per_request") or {}).get("best")


def _add_deltas(row: dict[str, Any], before: dict[str, Any] | None) -> None:
    """The step's cost over the previous measured step (None for the first, or after a failure)."""
    ok = row.get("problem") is None and before is not None and before.get("problem") is None
    if not ok:
        row["delta"] = None
        return
    assert before is not None
    c, b = row["counters"], before["counters"]
    by_package = {}
    for pkg in sorted(set(c["by_package"]) | set(b["by_package"])):
        now, was = c["by_package"].get(pkg, {}), b["by_package"].get(pkg, {})
        d = {k: now.get(k, 0) - was.get(k, 0) for k in ("calls", "c_calls", "lines")}
        if any(d.values()):
            by_package[pkg] = d
    row["delta"] = {
        "us": _delta(figure(row), figure(before)),
        "calls": c["calls"] - b["calls"],
        "c_calls": c["c_calls"] - b["c_calls"],
        "lines": c["lines"] - b["lines"],
        "by_package": by_package,
    }
    if "server" in row and "server" in before and "rps" in row["server"] and "rps" in before["server"]:
        row["delta"]["rps"] = _delta(row["server"]["rps"], before["server"]["rps"], 1)


def headline_of(rows: list[dict[str, Any]], ladder: Ladder | None = None) -> str:
    """One sentence: which step costs most (µs and calls), the whole ladder, and what removing defaults saves."""
    measured = [r for r in rows if r.get("delta") and r["delta"]["us"] is not None]
    if not measured:
        return ""
    top = max(measured, key=lambda r: r["delta"]["us"])
    ok = [r for r in rows if figure(r) is not None]
    first, last = ok[0], ok[-1]
    layer = ladder.layer if ladder else ""
    text = (
        f"{layer}: the costliest step is {top['step']} ({top['title']}): +{top['delta']['us']:.1f} µs and "
        f"{top['delta']['calls']:+d} Python calls per request; the whole ladder goes from "
        f"{figure(first):.1f} µs and {first['counters']['calls']} calls ({first['step']}) to "
        f"{figure(last):.1f} µs and {last['counters']['calls']} calls ({last['step']})"
    )
    for r in measured:
        if r["change"].startswith("-"):
            text += f"; removing the {r['change'][1:]} changes {r['delta']['us']:+.1f} µs and {r['delta']['calls']:+d} calls"
    return text + "."


# --- views: markdown and the waterfall chart ------------------------------------------------------------------------


def _fmt(value: float | int | None, signed: bool = False, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:+d}" if signed else f"{value:d}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def where_calls_go(delta: dict[str, Any] | None, keep: int = 3) -> str:
    """The packages a step's added Python calls belong to, largest change first: ``fastapi +61, starlette +25``."""
    if not delta:
        return ""
    moved = [(p, d["calls"]) for p, d in delta.get("by_package", {}).items() if d["calls"]]
    return ", ".join(f"{p} {n:+d}" for p, n in sorted(moved, key=lambda pn: -abs(pn[1]))[:keep])


def markdown(doc: dict[str, Any], chart_name: str | None = None) -> str:
    """The document as a markdown report: headline, table, and the request."""
    req = doc["request"]
    lines = [
        f"# Anatomy of {doc['layer']}",
        "",
        f"{doc.get('title') or ''}",
        "",
        f"Every step answers `{req['method']} {req['path']}` with the body `{req['body']}` ({req['content_type']}) "
        f"and gets `{json.dumps(doc['answer']['json'])}`; each adds one feature over the step above it.",
        "",
        f"**Headline.** {doc['headline']}" if doc.get("headline") else "",
        "",
    ]
    if chart_name:
        lines += [f"![waterfall: what each step adds, µs per request]({chart_name})", ""]
    server = doc["settings"].get("server")
    head = (
        "| # | step | adds | CPU µs / request: best (median) | Δ µs | Python calls | Δ calls | where Δ calls go "
        "| C calls | lines run | Δ lines |"
    )
    rule = "|--:|---|---|--:|--:|--:|--:|---|--:|--:|--:|"
    if server:
        head += f" req/s on {server} | p99 ms |"
        rule += "--:|--:|"
    lines += [head, rule]
    for r in doc["steps"]:
        if r.get("problem"):
            lines.append(f"| {r['index']} | `{r['step']}` | {r['title']} | not measured: {r['problem']} |")
            continue
        us, c, d = r.get("us_per_request"), r["counters"], r.get("delta") or {}
        timing = f"{us['best']:.1f} ({us['median']:.1f})" if us else "not timed"
        line = (
            f"| {r['index']} | `{r['step']}` | {r['title']} | {timing} | "
            f"{_fmt(d.get('us'), True)} | {c['calls']}{'' if r.get('exact', True) else '≈'} | {_fmt(d.get('calls'), True)} | {where_calls_go(d)} | {c['c_calls']} | "
            f"{c['lines']} | {_fmt(d.get('lines'), True)} |"
        )
        if server:
            s = r.get("server") or {}
            p99 = s.get("p99_us")
            line += f" {_fmt(s.get('rps'), digits=0)} | {_fmt(p99 / 1000 if p99 else None, digits=2)} |"
        lines.append(line)
    env = doc["environment"]
    lines += [
        "",
        f"Measured {doc['measured_at']} with `{doc['command'] or 'layercake anatomy ' + doc['layer']}` "
        f"({doc['elapsed_s']} s); {env.get('python', '')} on {env.get('cpu_count', '?')} CPUs, load average {env.get('loadavg_at_start')}. "
        "µs: CPU time per request, in-process (no socket), of the step's best batch (and the median of its "
        f"windows): {doc['settings'].get('interleaved_rounds', 1)} windows per step, "
        f"{doc['settings']['seconds_per_step']:g} s in all, timed round-robin with the other steps'; Δ µs is "
        "between best batches (`layercake.anatomy.figure` says why); calls and lines: one request, "
        "counted deterministically (`layercake bench --in-process` explains how).",
    ]
    if any(not r.get("exact", True) for r in doc["steps"]):
        lines += [
            "",
            "≈: a worker thread takes part in the request; where the OS switches threads varies, so the "
            "stdlib's calls (threading's locks and waits), and the lines the stdlib and anyio run, can differ "
            "by a few between runs -- every other package's calls are exact.",
        ]
    if doc.get("interrupted"):
        lines += ["", "*Interrupted: only the steps above were measured.*"]
    return "\n".join(line for line in lines) + "\n"


def chart(doc: dict[str, Any], path: Path | str) -> Path:
    """The waterfall: one bar per step, from the previous step's µs to its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["steps"] if figure(r) is not None]
    if not rows:
        raise LayercakeError("nothing was measured, so there is no chart to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height = 1.2 + 0.38 * len(rows)
    fig, ax = plt.subplots(figsize=(9, height), dpi=110)
    before = 0.0
    labels = []
    for i, r in enumerate(rows):
        us = figure(r) or 0.0  # the chart is drawn only from timed rows; an untimed one is a zero bar
        delta = us - before if i else us
        left = before if i else 0.0
        colour = "#8c8c8c" if i == 0 else ("#d9534f" if delta >= 0 else "#5cb85c")
        ax.barh(i, delta, left=left, color=colour, height=0.7)
        label = f"{us:.1f}" if i == 0 else f"{delta:+.1f}"
        ax.text(max(us, before) + 0.5, i, label, va="center", fontsize=8)
        labels.append(f"{r['step']}")
        before = us
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("CPU µs per request, in-process (each bar: what the step adds over the one above)")
    ax.set_xlim(0, max(figure(r) or 0.0 for r in rows) * 1.15)
    ax.set_title(f"Anatomy of {doc['layer']}: {doc['request']['method']} {doc['request']['path']}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(doc: dict[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(path: Path | str) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema") != SCHEMA:
        raise LayercakeError(f"{path}: not an anatomy document (schema {doc.get('schema')!r}, expected {SCHEMA})")
    return doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m layercake.anatomy", description="Check and measure anatomy steps in-process; prints JSON."
    )
    parser.add_argument("layer")
    parser.add_argument("step", nargs="?", help="one step, measured in this process")
    parser.add_argument("--helper", action="store_true", help="serve count/time requests on stdin (StepHelper)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    if args.helper:
        # Ctrl-C reaches the whole process group.  The parent decides what an interruption keeps, and ends the
        # helper by closing its stdin: a helper that died of the same SIGINT first would end the parent's
        # reading with EOF, and the rounds it had measured would be lost with it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _serve_helper(args.layer)
        return
    if not args.step:
        parser.error("name a step, or use --helper")
    with contextlib.redirect_stdout(sys.stderr):  # what a framework prints must not reach our JSON
        row = measure_step_here(args.layer, args.step, args.seconds)
    sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
