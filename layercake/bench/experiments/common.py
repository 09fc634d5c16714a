"""What every experiment of the sync-vs-async lab shares: the envelope, servers, loads, a bystander.

Theory of operation
-------------------
An experiment asks one question and answers it with *points*: one measured situation each (a
server, an app, a load, a number of connections).  Every experiment document has the envelope of
the bench results (``schema``, ``kind`` = ``experiment:NAME``, ``command``, ``measured_at``,
``elapsed_s``, ``environment``, ``settings``) plus ``partial`` (true when Ctrl-C stopped it: what
was measured is kept), ``notes`` (what the reader must know to trust the numbers) and ``points``.
Its schema is data (:class:`~layercake.bench.report.Field` rows), checked by :func:`validate`.

The pieces:

- :func:`start` starts an app on a registry server (``servers.supervise.start_server``, the very
  command a user would type), pins it to the server CPU and verifies it answers the experiment's
  routes exactly (:func:`verify`) before anything is measured.  Experiment endpoints live in the
  per-layer experiment apps (``layers/<layer>/experiments.py``), never in the contract apps.
- :func:`load` is one closed-loop load (wrk, or the built-in generator) reduced to a small dict.
- :class:`Bystander` is a second, *open-loop* client: a new connection asking for ``GET /plaintext``
  every 10 ms while a load runs, each answer timed from when it was due.  It asks the question a user
  of the site asks -- "is it still answering me?" -- rather than saturating anything.
- :class:`Steps` turns a fixed plan into progress calls, so the bar knows its total up front.

Every loop here is bounded in count and time, every socket is loopback, and everything opened is
closed in ``finally`` blocks: an interrupted run leaves no server and no descriptor behind.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import statistics
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from layercake.bench.environment import describe, now_utc
from layercake.bench.loadgen import Request, choose_generator, run_load
from layercake.bench.report import SCHEMA_ID, Field
from layercake.errors import LayercakeError

Progress = Callable[[str, int, int], None]  # (what is happening, done, total)


@dataclass
class LabConfig:
    """The options an experiment takes from ``layercake bench``."""

    duration: float | None = None  # seconds per point (None: the experiment's own)
    concurrency: list[int] | None = None  # the sweep (capacity: held connections); None: the experiment's
    servers: list[str] | None = None  # a subset of the experiment's servers
    smoke: bool = False  # a few points in seconds: checks the harness, measures nothing worth quoting
    pin: bool = True
    generator: str = "auto"
    wait_ms: int | None = None  # blocking, threadpool: how long each blocking request waits (None: 50 ms)
    rounds: int | None = None  # threadpool, cpu: interleaved rounds (None: the experiment's, 3)


# --- the document -----------------------------------------------------------------------------------------------------

_NUM = (int, float)

#: The envelope every experiment document has (``kinds`` is filled in per experiment).
ENVELOPE: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("schema", (str,), f'always "{SCHEMA_ID}"'),
    ("kind", (str,), '"experiment:NAME"'),
    ("command", (str,), "the command line that produced the document"),
    ("measured_at", (str,), "UTC start time, ISO 8601"),
    ("elapsed_s", _NUM, "wall-clock seconds the measurement took"),
    ("environment", (dict,), "the machine, Python and packages (layercake/bench/environment.py)"),
    ("settings", (dict,), "the options of the run"),
    ("partial", (bool,), "true: interrupted (Ctrl-C); the points measured so far are kept"),
    ("notes", (list,), "what a reader needs to trust the numbers (pinning, limits raised, servers skipped)"),
    ("points", (list,), "one measured situation each"),
)


def schema(kind: str, fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """The envelope plus an experiment's own fields, as :class:`Field` rows of one kind."""
    return tuple(Field(path, types, (kind,), meaning) for path, types, meaning in ENVELOPE) + fields


def _values(doc: Any, parts: list[str]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("", doc)]
    for part in parts:
        key, many = part.removesuffix("[]"), part.endswith("[]")
        nxt: list[tuple[str, Any]] = []
        for where, value in found:
            here = f"{where}.{key}".lstrip(".")
            if not isinstance(value, dict) or key not in value:
                nxt.append((here, _MISSING))
            elif many:
                nxt.extend((f"{here}[{i}]", x) for i, x in enumerate(value[key] or []))
            else:
                nxt.append((here, value[key]))
        found = nxt
    return found


_MISSING = object()


def validate(doc: Any, fields: tuple[Field, ...]) -> list[str]:
    """Problems with an experiment document (empty: it follows ``fields``)."""
    if not isinstance(doc, dict):
        return ["an experiment document is a JSON object"]
    problems = []
    if doc.get("schema") != SCHEMA_ID:
        problems.append(f"schema is {doc.get('schema')!r}, expected {SCHEMA_ID!r}")
    for f in fields:
        for where, value in _values(doc, f.path.split(".")):
            if value is _MISSING:
                if not f.optional:
                    problems.append(f"{where}: missing ({f.meaning})")
            elif not isinstance(value, f.types) or isinstance(value, bool) and bool not in f.types:
                problems.append(f"{where}: {type(value).__name__}, expected {' or '.join(t.__name__ for t in f.types)}")
    return problems


def envelope(name: str, command: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "kind": f"experiment:{name}",
        "command": command,
        "measured_at": now_utc(),
        "elapsed_s": 0.0,
        "environment": describe(),
        "settings": settings,
        "partial": False,
        "notes": [],
        "points": [],
    }


class Steps:
    """A plan of ``total`` steps reported to a progress callback as they are done."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done = total, 0
        self._progress = progress or (lambda what, done, total: None)

    def note(self, what: str) -> None:
        self._progress(what, self.done, self.total)

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        self._progress("", self.done, self.total)


@contextmanager
def interruptible(doc: dict[str, Any], t0: float) -> Iterator[None]:
    """Ctrl-C inside the block keeps the points measured so far and marks the document partial."""
    try:
        yield
    except KeyboardInterrupt:
        doc["partial"] = True
        done = f"{len(doc['runs'])} load(s)" if "runs" in doc else f"{len(doc['points'])} point(s)"
        doc["notes"].append(f"interrupted (Ctrl-C) after {done}: the rest was not measured")
    finally:
        doc["elapsed_s"] = round(time.monotonic() - t0, 1)


# --- servers ----------------------------------------------------------------------------------------------------------


def cpus(pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU), or Nones when not pinning (or fewer than two CPUs)."""
    from layercake.bench.runner import can_pin

    pins = can_pin() if pin else None
    return pins if pins else (None, None)


@dataclass(frozen=True)
class Check:
    """One request a verifier sends, and what the answer must be."""

    path: str
    status: int = 200
    body: bytes | None = None  # exact body
    json: dict[str, Any] | None = None  # these keys with these values


def verify(url: str, checks: list[Check], timeout: float = 10.0) -> list[str]:
    """Send each check's request once over a real socket; the problems found (empty: all good)."""
    import httpx

    problems = []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for check in checks:
            try:
                resp = client.get(check.path)
            except httpx.HTTPError as exc:
                problems.append(f"GET {check.path}: {type(exc).__name__}: {exc}")
                continue
            if resp.status_code != check.status:
                problems.append(f"GET {check.path}: status {resp.status_code}, expected {check.status}")
            elif check.body is not None and resp.content != check.body:
                problems.append(f"GET {check.path}: body {resp.content[:80]!r}, expected {check.body!r}")
            elif check.json is not None:
                try:
                    data = resp.json()
                except ValueError:
                    problems.append(f"GET {check.path}: body is not JSON: {resp.content[:80]!r}")
                    continue
                wrong = {
                    k: data.get(k) for k, v in check.json.items() if not isinstance(data, dict) or data.get(k) != v
                }
                if wrong:
                    problems.append(f"GET {check.path}: got {wrong}, expected {check.json}")
    return problems


def start(
    server: str,
    layer: str,
    app: str | None = None,
    checks: list[Check] | None = None,
    cpu: int | None = None,
    **flags: Any,
) -> Any:
    """``app`` (``module:attr``; default the layer's contract app) started on ``server``, pinned, verified.

    The server runs with the ladder's flags for it (``runner.SERVER_FLAGS``: uvicorn with httptools
    and uvloop, gunicorn gthread with 8 threads), then ``flags``.  Returns the
    :class:`~servers.supervise.RunningServer` -- a context manager that stops it with its whole
    process group.  Raises :class:`LayercakeError` when it does not start or fails a check; it is
    stopped then.
    """
    from layercake.bench.runner import SERVER_FLAGS, _affinity, pin_process_tree
    from servers.registry import ServerOptions
    from servers.supervise import start_server

    options = ServerOptions(app_target=app, **{**SERVER_FLAGS.get(server, {}), **flags})
    with _affinity(cpu):
        running = start_server(server, layer, options)
    try:
        if cpu is not None and running.pid:
            pin_process_tree(running.pid, cpu)
        problems = verify(running.url, checks or [])
    except BaseException:
        running.stop()
        raise
    if problems:
        running.stop()
        raise LayercakeError(f"{server} serving {app or layer} failed verification: {'; '.join(problems)}")
    return running


def group_usage(pgid: int) -> dict[str, int]:
    """Resident memory (KiB), threads and open descriptors summed over a process group (Linux /proc).

    RSS is summed per process, so pages shared between a pre-fork master and its workers count
    once per process -- what ``ps`` shows and what an OOM killer weighs; PSS would split them.
    """
    from servers.supervise import process_group_members

    rss = threads = fds = 0
    members = process_group_members(pgid)
    for pid in members:
        try:
            for line in open(f"/proc/{pid}/status", encoding="utf-8"):
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # a worker exited between listing and reading
    return {"rss_kib": rss, "threads": threads, "fds": fds, "processes": len(members)}


# --- load ---------------------------------------------------------------------------------------------------------------


def load(url: str, path: str, concurrency: int, duration: float, cpu: int | None, generator: str) -> dict[str, Any]:
    """One closed-loop load of ``GET path``: throughput, latency percentiles (ms) and errors."""
    gen = choose_generator(generator)
    result = run_load(url, Request("GET", path), concurrency, duration, generator=gen, cpu=cpu, timeout=10.0)
    lat = result.latency_us
    return {
        "generator": gen,
        "requests": result.requests,
        "duration_s": round(result.duration_s, 3),
        "rps": round(result.rps, 1),
        "p50_ms": round(lat.get("p50", 0.0) / 1000, 2),
        "p90_ms": round(lat.get("p90", 0.0) / 1000, 2),
        "p99_ms": round(lat.get("p99", 0.0) / 1000, 2),
        "errors": result.socket_errors + result.non_2xx,
    }


def sweep(
    live: dict[str, tuple[str, str]],
    concurrency: list[int],
    rounds: int,
    duration: float,
    cpu: int | None,
    generator: str,
    steps: Steps,
    runs: list[dict[str, Any]],
    failed: dict[str, str],
    duration_for: Callable[[str, int], float] | None = None,
    workers: dict[str, int] | None = None,
) -> None:
    """Load every (target, concurrency) cell ``rounds`` times, interleaved; each run appended to ``runs``.

    ``live`` maps a target id to (base URL, path).  As in the ladder (``stats.interleave``), round 1
    runs every cell once, round 2 again in reverse order, and so on: on a shared machine a burst of
    someone else's work lands on several targets alike instead of on one target's whole curve, and
    :func:`summarise` takes the median.  A target whose load fails (the server died) is dropped,
    with the reason in ``failed``.

    ``duration_for(target, c)``, when given, may lengthen a cell's runs: wrk reports only the
    requests that *complete* within ``-d``, so a run shorter than the latency it should measure sees
    only the lucky requests (a queue of 128 behind 8 threads of 50 ms is 0.8 s deep: a 1-second run
    would under-report its p50).  The experiment knows its expected queueing and asks for enough.

    ``workers`` maps a multi-process target to its process-group id: for those, each run also
    records ``connections_by_worker`` -- how many of the load's connections each worker process held
    halfway through (:func:`connections_by_worker`), because a keep-alive connection stays with the
    worker that accepted it, and two workers help only as far as the connections spread.
    """
    from layercake.bench.stats import interleave

    cells = [(t, c) for c in concurrency for t in live]
    for rnd, (target, c) in interleave(cells, rounds):
        if target in failed:
            steps.advance()
            continue
        url, path = live[target]
        steps.note(f"{target}: {c} in flight (round {rnd + 1}/{rounds})")
        try:
            seconds = max(duration, duration_for(target, c)) if duration_for else duration
            pgid = (workers or {}).get(target)
            spread: list[int] = []
            sampler = None
            if pgid:
                before = socket_counts(pgid)
                sampler = threading.Timer(seconds / 2, _sample_spread, (spread, pgid, before))
                sampler.start()
            try:
                result = load(url, path, c, seconds, cpu, generator)
            finally:
                if sampler is not None:
                    sampler.cancel()
                    sampler.join()
        except LayercakeError as exc:
            failed[target] = f"stopped answering at c={c}: {exc.message.splitlines()[0]}"
        else:
            extra = {"connections_by_worker": spread} if pgid else {}
            runs.append({"target": target, "concurrency": c, "round": rnd, **result, **extra})
        steps.advance()


def socket_counts(pgid: int) -> dict[int, int]:
    """Open sockets of each process in a group but its leader (the pre-fork master), from /proc."""
    from servers.supervise import process_group_members

    counts = {}
    for pid in process_group_members(pgid):
        if pid == pgid:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            counts[pid] = sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in fds)
        except OSError:
            continue  # exited, or a descriptor closed while listing
    return counts


def connections_by_worker(pgid: int, before: dict[int, int]) -> list[int]:
    """New sockets per worker since ``before``, most first; processes without sockets (helpers) left out."""
    now = socket_counts(pgid)
    return sorted((max(0, n - before.get(pid, 0)) for pid, n in now.items() if before.get(pid, 0) or n), reverse=True)


def _sample_spread(into: list[int], pgid: int, before: dict[int, int]) -> None:
    into.extend(connections_by_worker(pgid, before))


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (target, concurrency): medians over its rounds, the rps range, summed errors."""
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["target"], r["concurrency"]), []).append(r)
    points = []
    for (target, c), rs in cells.items():
        rps = [r["rps"] for r in rs]
        points.append(
            {
                "target": target,
                "concurrency": c,
                "rounds": len(rs),
                "rps": round(statistics.median(rps), 1),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in rs), 2),
                "p90_ms": round(statistics.median(r["p90_ms"] for r in rs), 2),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 2),
                "requests": sum(r["requests"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                **(
                    {"connections_by_worker": [r["connections_by_worker"] for r in rs]}
                    if any("connections_by_worker" in r for r in rs)
                    else {}
                ),
            }
        )
    return points


def run_lengths(doc: dict[str, Any]) -> str:
    """How long the runs really were ("1 s", "3–8 s"): :func:`sweep` may lengthen a cell's runs."""
    seconds = sorted({round(r["duration_s"]) for r in doc.get("runs", [])}) or [doc["settings"]["duration_s"]]
    return f"{seconds[0]:g} s" if len(seconds) == 1 else f"{seconds[0]:g}–{seconds[-1]:g} s"


#: Fields a swept experiment's document adds (threadpool, cpu), for their SCHEMAs.
SWEEP_FIELDS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("runs", (list,), "every load in the order run: target, concurrency, round, rps, p50_ms, p90_ms, p99_ms, errors"),
    ("points[].target", (str,), "a targets[].id"),
    ("points[].concurrency", (int,), "requests in flight (wrk connections)"),
    ("points[].rounds", (int,), "interleaved runs summarised (fewer than settings.rounds: interrupted or failed)"),
    ("points[].rps", (int, float), "requests per second, median over the rounds"),
    ("points[].rps_min", (int, float), "the slowest round"),
    ("points[].rps_max", (int, float), "the fastest round"),
    ("points[].p50_ms", (int, float), "median latency, ms (median over the rounds)"),
    ("points[].p99_ms", (int, float), "99th percentile latency, ms (median over the rounds)"),
    ("points[].errors", (int,), "socket errors + non-2xx over the rounds; non-zero: do not trust the point"),
)


def http_get(
    host: str, port: int, path: str, timeout: float, sock: socket.socket | None = None
) -> tuple[int, bytes, socket.socket | None]:
    """One ``GET`` over ``sock`` (or a new connection): (status, body, the socket if it stays open).

    Raises ``OSError`` (``TimeoutError`` included) when the server does not answer in time; the
    socket is closed then.  Understands ``Content-Length`` bodies, which is all /plaintext sends.
    """
    if sock is None:
        sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before a response")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed mid-body")
            body += chunk
        keep = headers.get("connection", "").lower() != "close"
        if not keep:
            sock.close()
        return status, body[:length], sock if keep else None
    except BaseException:
        sock.close()
        raise


def percentiles_ms(samples: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of latencies in seconds, as milliseconds (None without samples)."""
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


@dataclass
class _Ask:
    sock: socket.socket
    due: float  # when this request was scheduled: latency counts from here (no coordinated omission)
    sent: bool = False
    buf: bytes = b""


@dataclass
class Bystander:
    """An open-loop client: a new ``GET path`` every ``interval`` s, each on a new connection, each timed.

    *Open loop* matters here.  A client that waits for one answer before asking again (closed loop,
    as wrk does) asks only once while a server is stalled, and so reports one slow sample where a
    real user population would have sent hundreds -- the "coordinated omission" Gil Tene named.  This
    one keeps asking on schedule whatever happens, so a stall of 2 s shows as ~200 slow samples, and
    each latency is measured from when the request was *due*.  At most ``max_outstanding`` requests
    wait at once (a request that would exceed it is counted in ``skipped``); one that gets no answer
    within ``timeout`` counts as a timeout.  Runs in a thread between :meth:`start` and :meth:`stop`.
    """

    host: str
    port: int
    path: str = "/plaintext"
    interval: float = 0.01
    timeout: float = 5.0
    max_outstanding: int = 200
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0
    errors: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)

    def start(self) -> Bystander:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop asking; wait (at most ``timeout``) for the answers still due; the summary."""
        self._stop.set()
        self._thread.join(self.timeout + 2)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies) + self.timeouts + self.errors,
            "answered": len(self.latencies),
            "timeouts": self.timeouts,
            "errors": self.errors,
            "skipped": self.skipped,
            **percentiles_ms(self.latencies),
        }

    def _run(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n\r\n".encode()
        sel = selectors.DefaultSelector()
        asks: dict[socket.socket, _Ask] = {}
        next_due = time.perf_counter()
        drain_until: float | None = None
        try:
            while True:
                now = time.perf_counter()
                if self._stop.is_set() and drain_until is None:
                    drain_until = now + self.timeout
                if drain_until is not None and (not asks or now >= drain_until):
                    break
                while drain_until is None and now >= next_due:
                    if len(asks) >= self.max_outstanding:
                        self.skipped += 1
                    else:
                        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                        sock.setblocking(False)
                        if sock.connect_ex((self.host, self.port)) not in (0, errno.EINPROGRESS):
                            sock.close()
                            self.errors += 1
                        else:
                            asks[sock] = _Ask(sock, next_due)
                            sel.register(sock, selectors.EVENT_WRITE)
                    next_due += self.interval
                for sock in [s for s, a in asks.items() if now - a.due > self.timeout]:
                    self.timeouts += 1
                    self._drop(sel, asks, sock)
                wait = max(0.0, min(next_due - time.perf_counter(), 0.05))
                for key, _ in sel.select(timeout=wait):
                    self._step(sel, asks, key.fileobj, request)  # type: ignore[arg-type]  # every registered object is a socket
        finally:
            for sock in list(asks):
                self._drop(sel, asks, sock)
            sel.close()

    def _step(self, sel: selectors.BaseSelector, asks: dict, sock: socket.socket, request: bytes) -> None:
        ask = asks[sock]
        if not ask.sent:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.errors += 1
                self._drop(sel, asks, sock)
                return
            try:
                sock.send(request)  # well under a socket buffer: one send on a fresh socket
            except OSError:
                self.errors += 1
                self._drop(sel, asks, sock)
                return
            ask.sent = True
            sel.modify(sock, selectors.EVENT_READ)
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        ask.buf += data
        head, sep, body = ask.buf.partition(b"\r\n\r\n")
        complete = sep and head.startswith(b"HTTP/1.1 200") and body == b"Hello, World!"
        if complete:
            self.latencies.append(time.perf_counter() - ask.due)
            self._drop(sel, asks, sock)
        elif not data:  # closed (or reset) without the whole answer
            self.errors += 1
            self._drop(sel, asks, sock)

    @staticmethod
    def _drop(sel: selectors.BaseSelector, asks: dict, sock: socket.socket) -> None:
        sel.unregister(sock)
        sock.close()
        del asks[sock]


def load_with_bystander(
    url: str,
    host: str,
    port: int,
    path: str,
    concurrency: int,
    duration: float,
    cpu: int | None,
    generator: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``concurrency`` clients on ``path`` for ``duration`` s, a :class:`Bystander` timing /plaintext meanwhile.

    The bystander starts a quarter of the way in (the load's connections are open and busy by
    then) and stops before the load ends, so it only ever sees the server under load.
    """
    result: dict[str, Any] = {}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.update(load(url, path, concurrency, duration, cpu, generator))
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread below
            failure.append(exc)

    loader = threading.Thread(target=run, name="load", daemon=True)
    loader.start()
    bystander = Bystander(host, port)
    try:
        time.sleep(min(0.5, duration / 4))
        bystander.start()
        time.sleep(max(0.2, duration * 0.6))
    finally:
        seen = bystander.stop()
        loader.join(duration + 45)
    if failure:
        raise failure[0]
    return result, seen


# --- charts ---------------------------------------------------------------------------------------------------------------


def save_figure(fig: Any, doc: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    env = doc["environment"]
    partial = " · PARTIAL (interrupted)" if doc.get("partial") else ""
    width = int(fig.get_figwidth() * 17)  # characters of 7-point text across the figure
    fig.text(0.01, 0.03, textwrap.fill(doc["command"], width), fontsize=7, color="grey", va="bottom")
    fig.text(
        0.01,
        0.01,
        f"{env.get('cpu_model', '')} · {env.get('cpu_count')} CPUs · load average at start "
        f"{(env.get('loadavg_at_start') or ['?'])[0]} · {env.get('python', '')} · {doc['measured_at']}{partial}",
        fontsize=7,
        color="grey",
    )
    fig.tight_layout(rect=(0, 0.03 + 0.025 * (1 + len(doc["command"]) // width), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def md_header(doc: dict[str, Any], title: str, question: str) -> list[str]:
    """The opening of every experiment's markdown report."""
    from layercake.bench.report import environment_line

    out = [f"# {title}", "", question, "", f"Produced by `{doc['command']}` ({doc['elapsed_s']} s).", ""]
    out += [environment_line(doc) + ".", ""]
    env = doc["environment"]
    load1 = (env.get("loadavg_at_start") or [0.0])[0]
    if load1 >= 0.5:
        out += [
            f"Measured on a {env.get('cpu_count')}-CPU machine shared with other work (load average {load1} at "
            "start): the comparisons within this run are the result; absolute figures are this moment's.",
            "",
        ]
    if doc.get("partial"):
        out += ["**PARTIAL: interrupted with Ctrl-C; only the points below were measured.**", ""]
    for note in doc.get("notes", []):
        out.append(f"- {note}")
    if doc.get("notes"):
        out.append("")
    return out


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def schema_markdown(fields: tuple[Field, ...]) -> str:
    """An experiment's own fields (the envelope left out) as a markdown table, for docs/bench.md."""
    names = {str: "string", int: "integer", float: "number", dict: "object", list: "array", bool: "boolean"}
    names[type(None)] = "null"
    envelope = {path for path, _, _ in ENVELOPE}
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for f in fields:
        if f.path in envelope:
            continue
        types = " \\| ".join(dict.fromkeys(names[t] for t in f.types))
        optional = " (optional)" if f.optional else ""
        lines.append(f"| `{f.path}`{optional} | {types} | {f.meaning.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
