"""The socket benchmark: plan the cells, start and pin the servers, verify, load, summarise.

Theory of operation
-------------------
A **target** is something listening on a port: a layer on a server (through the
servers registry, ``servers.supervise.start_server``), the *floor* (``floor.py``), or
the *peers* (Node.js's ``http``, ``node_peer.js``; Go's ``net/http``, ``go_peer.go``).  A **cell** is a target x endpoint x
concurrency; a **run** is one load of one cell (``loadgen.run_load``).

1. *Plan.*  The default is the ladder: every layer on the reference server of its
   interface -- ASGI on uvicorn with httptools and uvloop (uvicorn's fastest
   configuration, the one the orientation figures in the issue were taken with),
   WSGI on gunicorn's gthread worker (one process, 8 threads) -- plus the floor.
   ``--servers`` replaces the reference servers (a layer whose interface a server
   doesn't speak goes through the a2wsgi bridge, as ``serve`` does); ``--full`` is
   every available server with every layer.  The plan knows its duration before it
   starts, and the command prints it.
2. *Start and pin.*  All targets are started first and stay up for the whole run, so
   the runs can be interleaved without restarts (``--full`` starts one server's
   layers at a time: :func:`batches`).  On a machine with two or more CPUs
   every server process (and every thread and worker it has or will fork) is pinned
   to ``server_cpu``, the load generator to ``loadgen_cpu``: the server cannot steal
   the generator's core or the reverse, and idle servers cost nothing.
3. *Verify.*  Before a target is loaded: the quick check (each benchmarked request
   once, status and body, ``endpoints.quick_check``) for every target, and for a
   layer the whole contract over HTTP (``layercake.contract.run_contract``: about
   two tenths of a second per pair).  A failed contract
   case on a benchmarked route takes the target out of the run; other failed cases (a
   server joining repeated headers its own way, say) are recorded next to its results,
   because they don't touch what is measured.
4. *Warm up*: a few hundred requests per cell, so first-request paths (imports,
   caches, thread pools) are not measured.
5. *Load*, interleaved: round 1 runs every cell once, round 2 again in reverse order,
   and so on (``stats.interleave``): drift lands on every target alike.
6. *Summarise*: per cell the median requests/s with min-max, median p50/p99 latency,
   errors (socket errors plus non-2xx, summed over runs; any error flags the cell), and
   ratios measured in this run: against the bare layer of the same interface on the
   same server, and against the baseline target (default: the floor).

What it deliberately doesn't do: run the servers anywhere but loopback, tune the
kernel, or retry a failed run -- a failure is a result.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layercake.bench import endpoints as ep
from layercake.bench.environment import describe, now_utc
from layercake.bench.loadgen import Generator, LoadResult, Request, choose_generator, run_load
from layercake.bench.stats import Spread, interleave, ratio
from layercake.contract import GROUPS
from layercake.errors import LayercakeError

NODE_PEER = Path(__file__).resolve().parent / "node_peer.js"
FLOOR = "floor"
NODE = "node"
GO = "go"  # Go's net/http: go_peer.go, built on first use (go_build.py)
PEERS = (NODE, GO)

#: The reference server of each interface, and the flags it runs with.
REFERENCE: dict[str, tuple[str, dict[str, Any]]] = {
    "asgi": ("uvicorn", {"http": "httptools", "loop": "uvloop"}),
    "wsgi": ("gunicorn-gthread", {"workers": 1, "threads": 8}),
}
#: Flags that make a server its fastest documented self, applied whenever it runs.
SERVER_FLAGS: dict[str, dict[str, Any]] = {
    "uvicorn": {"http": "httptools", "loop": "uvloop"},
    "gunicorn-gthread": {"threads": 8},
}
#: The contract case that checks each benchmarked endpoint (layercake/contract/cases.py ids).
CONTRACT_CASE = {"plaintext": "plaintext", "json": "json", "item": "item_found", "create": "create", "slow": "slow"}
BARE = {"asgi": "bare_asgi", "wsgi": "bare_wsgi"}
#: The contract groups run before loading a layer: all of them (about 0.2 s a pair on
#: loopback).  A server that buffers whole uploads (waitress) spends VERIFY_TIMEOUT on each
#: of its two refuse-from-the-headers cases, which fail there and are recorded, not blocking.
VERIFY_GROUPS = GROUPS
#: Seconds the contract client waits for any one answer while verifying.
VERIFY_TIMEOUT = 5.0

#: Seconds each run costs beyond its duration (wrk start, connection set-up, result).
RUN_OVERHEAD = 0.15
#: Seconds to start, pin, verify and warm one target (gunicorn on a busy box: ~2 s).
TARGET_OVERHEAD = 2.5
#: The default run must finish within this on two cores (the issue's budget).
DEFAULT_BUDGET = 180.0


@dataclass(frozen=True)
class Target:
    server: str  # a registry name, "floor", "node" or "go"
    layer: str  # a layer name, "floor", "node" or "go"
    interface: str  # "asgi" | "wsgi" | "http" (floor, peer)
    flags: tuple[tuple[str, Any], ...] = ()  # ServerOptions fields set for this server
    label: str = ""  # names the configuration when one server runs in several (the parsers experiment)

    @property
    def id(self) -> str:
        if self.server in (FLOOR, *PEERS):
            return self.layer
        return f"{self.server}({self.label})/{self.layer}" if self.label else f"{self.server}/{self.layer}"

    @property
    def kind(self) -> str:
        return {FLOOR: "floor", NODE: "peer", GO: "peer"}.get(self.server, "layer")

    def supports(self, endpoint: str) -> bool:
        return self.kind == "layer" or self.kind == "floor" and endpoint != "slow" or endpoint in ep.PEER_ENDPOINTS


@dataclass
class BenchConfig:
    layers: list[str] | None = None  # None: all
    servers: list[str] | None = None  # None: the reference server of each interface
    endpoints: list[str] = field(default_factory=lambda: list(ep.LADDER_ENDPOINTS))
    concurrency: list[int] = field(default_factory=lambda: [64])
    duration: int = 1  # seconds per run (wrk takes whole seconds)
    repeat: int = 3
    workers: int | None = None
    http: str | None = None  # HTTP parser, for servers that offer a choice (uvicorn: h11 | httptools)
    loop: str | None = None  # event loop, for servers that offer a choice (asyncio | uvloop)
    generator: str = "auto"  # auto | wrk | builtin
    floor: bool = True
    peers: bool = False
    full: bool = False
    baseline: str | None = None  # a target id; None: the floor when present
    pin: bool = True
    warmup_requests: int = 300
    timeout: float = 10.0  # per-request timeout of the generator
    targets: list[Target] | None = None  # an experiment's own plan (the parsers matrix), after the floor

    def validate(self) -> None:
        if self.duration < 1:
            raise LayercakeError("--duration is in whole seconds and at least 1 (wrk's resolution)", 2)
        if self.repeat < 1:
            raise LayercakeError("--repeat must be at least 1", 2)
        if not self.concurrency or min(self.concurrency) < 1:
            raise LayercakeError("--concurrency takes positive numbers, e.g. 1,16,64,256", 2)
        for name in self.endpoints:
            ep.get_endpoint(name)


# --- planning --------------------------------------------------------------------------------------------------------


def _options_for(server: str, interface: str, config: BenchConfig) -> tuple[tuple[str, Any], ...]:
    """The ServerOptions fields for ``server``: its best flags, then what the user asked for.

    ``--http`` / ``--loop`` apply to the servers that offer that choice (uvicorn's
    ``--http h11``, hypercorn's ``--loop uvloop``, ...) and leave the others alone, so
    ``--servers scratch-asgi,uvicorn --http h11 --loop asyncio`` compares equal parsers.
    """
    from servers.registry import get_server

    caps = get_server(server).capabilities
    flags = dict(SERVER_FLAGS.get(server, {}))
    if REFERENCE[interface][0] == server:
        flags.update(REFERENCE[interface][1])
    if config.workers is not None:
        flags["workers"] = config.workers
    if config.http and config.http in caps.http_parsers:
        flags["http"] = config.http
    if config.loop and config.loop in caps.loops:
        flags["loop"] = config.loop
    return tuple(sorted(flags.items()))


def plan_targets(config: BenchConfig) -> list[Target]:
    """The targets of a run, in ladder order, floor first."""
    from layers import LAYERS, get_layer
    from servers.registry import SERVERS, get_server

    layer_names = config.layers or list(LAYERS)
    layers = [get_layer(n) for n in layer_names]
    targets: list[Target] = []
    if config.floor:
        targets.append(Target(FLOOR, FLOOR, "http"))
    if config.peers:
        if not shutil.which("node") and not shutil.which("go"):
            raise LayercakeError(
                "--peers needs node (Node.js) or go on the PATH; install them (apt install nodejs golang-go)"
            )
        # A peer whose program is missing is still planned: starting it fails with the reason, which the
        # results record (targets[].error) and the report prints -- skipped, said why, not silently absent.
        targets.append(Target(NODE, NODE, "http"))
        targets.append(Target(GO, GO, "http"))
    if config.targets is not None:
        return targets + list(config.targets)
    if config.full:
        servers = [s for s in SERVERS.values() if s.available]
    elif config.servers:
        servers = [get_server(s) for s in config.servers]
    else:
        servers = []
    for layer in layers:
        if servers:
            for spec in servers:
                if spec.name == "wsgiref":
                    continue  # one request at a time over HTTP/1.0: not a benchmark target, see `layercake servers`
                targets.append(
                    Target(spec.name, layer.name, layer.interface, _options_for(spec.name, spec.interface, config))
                )
        else:
            server = REFERENCE[layer.interface][0]
            targets.append(Target(server, layer.name, layer.interface, _options_for(server, layer.interface, config)))
    return targets


def check_baseline(targets: list[Target], config: BenchConfig) -> None:
    """A --baseline must be one of the run's targets, else every ratio to it would be blank."""
    if config.baseline and config.baseline not in {t.id for t in targets}:
        from layercake.errors import UnknownName

        raise UnknownName("baseline target", config.baseline, [t.id for t in targets])


def plan_cells(targets: list[Target], config: BenchConfig) -> list[tuple[Target, str, int]]:
    """Endpoint-major, then concurrency, then target: neighbours in the run order are comparable."""
    return [(t, e, c) for e in config.endpoints for c in config.concurrency for t in targets if t.supports(e)]


def estimate_seconds(targets: list[Target], cells: list[tuple[Target, str, int]], config: BenchConfig) -> float:
    peer_warmup = sum(1 + RUN_OVERHEAD for t, _, _ in cells if t.kind == "peer") / max(1, len(config.concurrency))
    return len(targets) * TARGET_OVERHEAD + len(cells) * config.repeat * (config.duration + RUN_OVERHEAD) + peer_warmup


# --- starting and pinning ------------------------------------------------------------------------------------------------


def can_pin() -> tuple[int, int] | None:
    """(server CPU, generator CPU) when this process may use two or more CPUs on Linux."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def pin_process_tree(pid: int, cpu: int) -> int:
    """Pin every thread of ``pid`` and of its descendants to ``cpu``; how many threads were pinned.

    Children forked later inherit the affinity of the thread that forks them, so pinning
    a gunicorn arbiter also pins the workers it re-spawns.
    """
    pinned = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        task_dir = Path(f"/proc/{current}/task")
        try:
            tids = [int(t.name) for t in task_dir.iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, {cpu})
                pinned += 1
            except OSError:
                pass
            try:
                children = (task_dir / str(tid) / "children").read_text().split()
            except OSError:
                children = []
            pending.extend(int(c) for c in children)
    return pinned


@contextmanager
def _affinity(cpu: int | None) -> Iterator[None]:
    """Run the block with this thread on ``cpu``: processes it spawns start there (inherited)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class ProcessTarget:
    """The floor or the node peer: a subprocess we start ourselves, stopped like the registry's."""

    def __init__(self, argv: list[str], native_command: str, host: str = "127.0.0.1") -> None:
        from servers.supervise import free_port

        self.host, self.port = host, free_port(host)
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.native_command = native_command.replace("{port}", str(self.port))
        self.bridge = None
        self._log = tempfile.TemporaryFile(prefix="layercake-bench-")
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LayercakeError(f"{self.native_command} exited with {self._proc.returncode}: {self.output()}")
            try:
                with socket.create_connection((host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise LayercakeError(f"{self.native_command} did not listen within 20 s")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self._proc.pid

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-500:]

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> ProcessTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_target(target: Target) -> Any:
    """Start a target; the returned object has ``url``, ``pid``, ``native_command``, ``bridge`` and is a context manager."""
    if target.server == FLOOR:
        return ProcessTarget(
            [sys.executable, "-m", "layercake.bench.floor", "--port", "{port}"],
            "python -m layercake.bench.floor --port {port}",
        )
    if target.server == NODE:
        if not shutil.which("node"):
            raise LayercakeError(
                "node is not on the PATH: the Node.js peer is skipped (install it: apt install nodejs)"
            )
        return ProcessTarget(["node", str(NODE_PEER), "{port}"], f"node {NODE_PEER.name} {{port}}")
    if target.server == GO:
        from layercake.bench import go_build

        binary = go_build.build()  # cached after the first build; raises with the reason when go is absent
        return ProcessTarget([str(binary), "{port}"], "go build -o go-peer go_peer.go && ./go-peer {port}")
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    return start_server(target.server, target.layer, ServerOptions(**dict(target.flags)))


# --- verification and warm-up --------------------------------------------------------------------------------------------


@dataclass
class Verification:
    method: str  # "contract+quick" | "quick"
    passed: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)  # failed cases outside the benchmarked routes
    blocking: list[str] = field(default_factory=list)  # problems on benchmarked routes: the target is not loaded

    @property
    def ok(self) -> bool:
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "passed": self.passed,
            "total": self.total,
            "ok": self.ok,
            "failures": self.failures,
            "blocking": self.blocking,
        }


def verify_target(target: Target, url: str, endpoints: list[str]) -> Verification:
    names = [e for e in endpoints if target.supports(e)]
    problems = ep.quick_check(url, names)
    if target.kind != "layer":
        return Verification("quick", len(names) - len(problems), len(names), [], problems)
    from layercake.contract import run_contract
    from layers import get_layer

    results = run_contract(url, get_layer(target.layer), groups=VERIFY_GROUPS, timeout=VERIFY_TIMEOUT)
    benchmarked = {CONTRACT_CASE[e] for e in names}
    v = Verification("contract+quick", sum(r.ok for r in results), len(results))
    for r in results:
        if not r.ok:
            (v.blocking if r.case.id in benchmarked else v.failures).append(f"{r.case.id}: {r.detail}")
    v.blocking.extend(problems)
    return v


def warm_up(url: str, request: Request, count: int) -> None:
    """Send ``count`` requests, reading each response, before anything is measured.

    httpx reconnects whenever a server closes the connection (gunicorn's sync worker
    and HTTP/1.0 servers close after every response), so one loop warms every server.
    """
    import httpx

    headers = {"content-type": request.content_type} if request.body else {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(count):
            client.request(request.method, request.path, content=request.body or None, headers=headers)


# --- running ---------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    endpoint: str
    concurrency: int
    round: int
    result: LoadResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "endpoint": self.endpoint,
            "concurrency": self.concurrency,
            "round": self.round,
            **self.result.to_dict(),
        }


Progress = Callable[[str, int, int], None]  # (what is happening, done, total)


def batches(targets: list[Target], config: BenchConfig) -> list[list[Target]]:
    """Which targets are up at the same time (and interleaved with each other).

    The ladder and any ``--servers`` run: one batch, everything interleaved.  ``--full``:
    one batch per server (its six layers), the floor and the peer with the first, so
    seventy-odd servers are never up at once.
    """
    if not config.full:
        return [targets]
    groups: dict[str, list[Target]] = {}
    for t in targets:
        groups.setdefault(t.server, []).append(t)
    fixed = [t for t in targets if t.kind != "layer"]
    layered = [g for server, g in groups.items() if server not in (FLOOR, *PEERS)]
    if not layered:
        return [fixed]
    return [fixed + layered[0], *layered[1:]]


def _start_batch(
    batch: list[Target],
    config: BenchConfig,
    stack: ExitStack,
    target_docs: dict[str, dict[str, Any]],
    server_cpu: int | None,
    note: Callable[[str], None],
) -> dict[str, Any]:
    """Start, pin, verify and warm every target of a batch; the ones ready to load, by id."""
    live: dict[str, Any] = {}
    for i, target in enumerate(batch):
        note(f"starting {target.id}")
        doc: dict[str, Any] = {
            "id": target.id,
            "server": target.server,
            "layer": target.layer,
            "interface": target.interface,
            "kind": target.kind,
            "flags": dict(target.flags),
        }
        target_docs[target.id] = doc
        try:
            with _affinity(server_cpu):
                server = stack.enter_context(start_target(target))
        except LayercakeError as exc:
            doc["error"] = f"did not start: {exc.message}"
            continue
        if server_cpu is not None:
            doc["pinned_threads"] = pin_process_tree(server.pid, server_cpu)
        doc["native_command"] = server.native_command
        doc["bridge"] = server.bridge
        note(f"verifying {target.id} ({i + 1}/{len(batch)})")
        verification = verify_target(target, server.url, config.endpoints)
        doc["verification"] = verification.to_dict()
        if not verification.ok:
            continue
        for e in config.endpoints:
            if target.supports(e):
                # /slow waits 50 ms a request: a few rounds warm it (and the thread pool) enough.
                count = config.warmup_requests if e != "slow" else 16
                warm_up(server.url, ep.ENDPOINTS[e].request, count)
        live[target.id] = server
    return live


def run_bench(config: BenchConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    """Run the socket benchmark described by ``config``; return the results document (``report.SCHEMA``)."""
    config.validate()
    generator: Generator = choose_generator(config.generator)
    targets = plan_targets(config)
    if not targets:
        raise LayercakeError("nothing to benchmark: no layers and no floor")
    check_baseline(targets, config)
    cells = plan_cells(targets, config)
    pins = can_pin() if config.pin else None
    server_cpu, loadgen_cpu = pins if pins else (None, None)
    started_at = now_utc()
    t0 = time.monotonic()
    env = describe()
    env["pinning"] = {"server_cpu": server_cpu, "loadgen_cpu": loadgen_cpu}
    env["generator"] = {
        "kind": generator,
        "threads": 1 if generator == "wrk" else None,
        "why": "--generator " + config.generator
        if config.generator != "auto"
        else ("wrk is installed" if generator == "wrk" else "wrk is not installed"),
    }
    note = progress or (lambda what, done, total: None)
    total_runs = len(cells) * config.repeat
    target_docs: dict[str, dict[str, Any]] = {}
    loaded: set[str] = set()
    runs: list[Run] = []
    done = 0
    partial: dict[str, Any] | None = None
    try:  # Ctrl-C keeps the runs measured so far (layercake.progress: the document says "partial")
        for batch in batches(targets, config):
            batch_cells = [cell for cell in cells if cell[0] in batch]
            so_far = done

            def starting(what: str, so_far: int = so_far) -> None:
                note(what, so_far, total_runs)

            with ExitStack() as stack:
                live = _start_batch(batch, config, stack, target_docs, server_cpu, starting)
                loaded.update(live)
                for target in batch:
                    if target.server == NODE and target.id in live:
                        # V8 compiles hot functions only after thousands of calls: give the peer one unrecorded
                        # load per endpoint so its JIT warm-up is not measured as Node's speed.
                        for e in config.endpoints:
                            if target.supports(e):
                                note(f"warming {target.id} {e} (JIT)", done, total_runs)
                                run_load(
                                    live[target.id].url,
                                    ep.ENDPOINTS[e].request,
                                    max(config.concurrency),
                                    1,
                                    generator=generator,
                                    cpu=loadgen_cpu,
                                    timeout=config.timeout,
                                )
                if generator == "builtin" and FLOOR in live and "ceiling_rps" not in env["generator"]:
                    note("measuring the built-in generator's ceiling against the floor", done, total_runs)
                    ceiling = run_load(
                        live[FLOOR].url,
                        ep.ENDPOINTS["plaintext"].request,
                        max(config.concurrency),
                        config.duration,
                        generator="builtin",
                        cpu=loadgen_cpu,
                    )
                    env["generator"]["ceiling_rps"] = round(ceiling.rps)
                for rnd, (target, endpoint, conc) in interleave(batch_cells, config.repeat):
                    if target.id in live:
                        note(f"{target.id} {endpoint} c{conc} (round {rnd + 1}/{config.repeat})", done, total_runs)
                        try:
                            result = run_load(
                                live[target.id].url,
                                ep.ENDPOINTS[endpoint].request,
                                conc,
                                config.duration,
                                generator=generator,
                                cpu=loadgen_cpu,
                                timeout=config.timeout,
                            )
                        except LayercakeError as exc:  # the server died mid-run (wrk cannot connect): a result too
                            target_docs[target.id]["error"] = f"stopped answering during the run: {exc.message}"
                            del live[target.id]
                        else:
                            runs.append(Run(target.id, endpoint, conc, rnd, result))
                    done += 1
    except KeyboardInterrupt:
        partial = {"interrupted": "Ctrl-C", "done": done, "total": total_runs, "what": "runs"}
    if partial is None:
        note("done", total_runs, total_runs)
    baseline = config.baseline or (FLOOR if FLOOR in loaded else None)
    return {
        "schema": "layercake.bench/1",
        "kind": "ladder",
        "command": command,
        "measured_at": started_at,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "environment": env,
        "settings": {
            "endpoints": config.endpoints,
            "concurrency": config.concurrency,
            "duration_s": config.duration,
            "repeat": config.repeat,
            "workers": config.workers,
            "baseline": baseline,
            "warmup_requests": config.warmup_requests,
            "timeout_s": config.timeout,
        },
        "targets": list(target_docs.values()),
        "runs": [r.to_dict() for r in runs],
        "results": summarise(runs, target_docs, baseline),
        **({"partial": partial} if partial else {}),
    }


def summarise(runs: list[Run], targets: dict[str, dict[str, Any]], baseline: str | None) -> list[dict[str, Any]]:
    """One row per cell: medians, spread, errors, ratios (see the module docs)."""
    cells: dict[tuple[str, str, int], list[LoadResult]] = {}
    for r in runs:
        cells.setdefault((r.target, r.endpoint, r.concurrency), []).append(r.result)
    medians = {key: Spread.of(x.rps for x in results).median for key, results in cells.items()}
    rows = []
    for (target_id, endpoint, conc), results in cells.items():
        t = targets[target_id]
        rps = Spread.of(x.rps for x in results)
        socket_errors = sum(x.socket_errors for x in results)
        non_2xx = sum(x.non_2xx for x in results)
        bare_id = f"{t['server']}/{BARE[t['interface']]}" if t["kind"] == "layer" else None
        rows.append(
            {
                "target": target_id,
                "server": t["server"],
                "layer": t["layer"],
                "interface": t["interface"],
                "kind": t["kind"],
                "endpoint": endpoint,
                "concurrency": conc,
                "rps": rps.to_dict(1),
                "latency_us": {
                    p: Spread.of(x.latency_us.get(p, 0.0) for x in results).to_dict(1) for p in ("p50", "p90", "p99")
                },
                "requests": sum(x.requests for x in results),
                "errors": socket_errors + non_2xx,
                "socket_errors": socket_errors,
                "non_2xx": non_2xx,
                "flagged": bool(socket_errors or non_2xx),
                "ratio_to_bare": _rounded(ratio(rps.median, medians.get((bare_id, endpoint, conc))))
                if bare_id
                else None,
                "ratio_to_baseline": _rounded(ratio(rps.median, medians.get((baseline, endpoint, conc))))
                if baseline
                else None,
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
