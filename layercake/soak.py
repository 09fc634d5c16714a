"""A soak: bounded mixed-endpoint load on loopback, watching the server's memory and descriptors.

Theory of operation
-------------------
A benchmark asks "how fast"; a soak asks "does it stay well".  :func:`soak` starts a layer
on a server through the registry, measures the server's processes (the master and every
worker in its process group), then runs ``concurrency`` client tasks for ``duration``
seconds.  Each task opens a keep-alive connection, sends a random run of requests from
:data:`MIX` (the contract's endpoints: small and chunked responses, request bodies in
both framings, query parsing, a 404 and a 422, a short sleep), then closes and opens a
new one -- so accept, keep-alive reuse and connection teardown are all exercised.  Every
response's status is checked against the contract; anything else, and every connection
error or timeout, is an error.

While the load runs, a sampler reads each server process's ``VmRSS`` from
``/proc/PID/status`` and counts ``/proc/PID/fd`` (psutil would do the same; it is not a
dependency).  Afterwards the clients have closed everything, so the descriptor count
must come back to where it was before the load -- a higher count is a leaked socket.
Memory is judged from the end of the warm-up (the first tenth of the run, where caches
and thread stacks legitimately grow) to the end: it should be flat.

Bounds: the run stops at ``duration`` seconds or ``max_requests`` requests, whichever
comes first, every request has a timeout, and the server is stopped at the end whatever
happened.  The client is asyncio with raw sockets and the probe's sans-I/O response
reader -- cheap enough that on a two-core machine the server, not the client, is what
gets measured.

What it deliberately does not do: measure latency or throughput for comparison (that is
``layercake bench``, with wrk and pinned CPUs), or write to the store: ``POST /items``
grows the in-memory database by design, which would read as a leak.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from layercake.probe import ResponseError, parse_response

# (weight, method, target, body, chunked body?, expected status)
MIX: list[tuple[int, str, str, bytes, bool, int]] = [
    (6, "GET", "/plaintext", b"", False, 200),
    (4, "GET", "/json", b"", False, 200),
    (3, "GET", "/items/7", b"", False, 200),
    (2, "GET", "/items?limit=5&offset=10", b"", False, 200),
    (2, "POST", "/echo", b"e" * 1024, False, 200),
    (1, "POST", "/echo", b"c" * 3000, True, 200),
    (2, "GET", "/stream?n=5", b"", False, 200),
    (1, "GET", "/headers", b"", False, 200),
    (1, "GET", "/health", b"", False, 200),
    (1, "GET", "/slow?ms=10", b"", False, 200),
    (1, "GET", "/items/abc", b"", False, 422),
    (1, "GET", "/no/such/path", b"", False, 404),
]
REQUEST_TIMEOUT = 10.0
MAX_REQUESTS_PER_CONNECTION = 50


def _encode(method: str, target: str, body: bytes, chunked: bool) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: soak\r\n"
    if chunked:
        half = len(body) // 2
        pieces = [body[:half], body[half:]]
        data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + data
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n"
    return (head + "\r\n").encode() + body


_REQUESTS = [(weight, _encode(m, t, b, c), f"{m} {t.split('?')[0]}", status) for weight, m, t, b, c, status in MIX]


# ---------------------------------------------------------------------------------------
# Measuring processes through /proc
# ---------------------------------------------------------------------------------------


def process_rss(pid: int) -> int:
    """Resident set size in bytes (``VmRSS`` in /proc/PID/status), 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_fds(pid: int) -> int:
    """Open file descriptors (entries of /proc/PID/fd), 0 if gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


@dataclass
class Sample:
    seconds: float  # since the load started
    rss: int  # bytes, summed over the server's processes
    fds: int
    requests: int  # completed so far


def measure(pids: list[int], started: float, requests: int) -> Sample:
    return Sample(
        round(time.monotonic() - started, 2), sum(map(process_rss, pids)), sum(map(process_fds, pids)), requests
    )


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


@dataclass
class SoakReport:
    server: str
    layer: str
    command: str
    duration: float
    concurrency: int
    processes: int = 0
    requests: int = 0
    elapsed: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)  # "GET /json 200" -> count
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count
    samples: list[Sample] = field(default_factory=list)
    fds_before: int = 0
    fds_after: int = 0
    rss_before: int = 0
    rss_after: int = 0
    interrupted: bool = False  # Ctrl-C ended the load before its duration or request bound

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def leaked_fds(self) -> int:
        return max(0, self.fds_after - self.fds_before)

    def timeline(self, points: int = 10) -> list[Sample]:
        """About ``points`` samples evenly spread over the run (first and last included)."""
        if len(self.samples) <= points:
            return list(self.samples)
        step = (len(self.samples) - 1) / (points - 1)
        return [self.samples[round(i * step)] for i in range(points)]

    def rss_growth(self) -> int:
        """Bytes of RSS growth from the end of the warm-up (first tenth) to the end."""
        if len(self.samples) < 4:
            return self.rss_after - self.rss_before
        tenth = max(1, len(self.samples) // 10)
        warm = statistics.median(s.rss for s in self.samples[tenth : 2 * tenth + 1])
        end = statistics.median(s.rss for s in self.samples[-tenth:])
        return int(end - warm)

    def memory_flat(self) -> bool:
        # 10 % or 8 MiB, whichever is more: allocator arenas move in steps of megabytes.
        warm = self.rss_before or 1
        return self.rss_growth() <= max(8 * 1024 * 1024, warm // 10)

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.error_count == 0 and self.leaked_fds == 0 and self.memory_flat()

    def to_json(self) -> str:
        data = asdict(self)
        data.update(ok=self.ok, rss_growth=self.rss_growth(), leaked_fds=self.leaked_fds, error_count=self.error_count)
        if self.interrupted:
            data["partial"] = {"interrupted": "Ctrl-C", "elapsed_s": self.elapsed, "duration_s": self.duration}
        return json.dumps(data, indent=2)


# ---------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------


class _Load:
    def __init__(self, host: str, port: int, deadline: float, max_requests: int, seed: int) -> None:
        self.host, self.port, self.deadline, self.max_requests = host, port, deadline, max_requests
        self.rng = random.Random(seed)
        self.weights = [weight for weight, *_ in _REQUESTS]
        self.started = 0  # requests handed out (the max_requests bound)
        self.done = 0
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def more(self) -> bool:
        return time.monotonic() < self.deadline and self.started < self.max_requests

    async def client(self) -> None:
        while self.more():
            try:
                await asyncio.wait_for(self.connection(), timeout=REQUEST_TIMEOUT * MAX_REQUESTS_PER_CONNECTION)
            except TimeoutError:
                self.errors["timeout"] += 1
            except (OSError, ResponseError, asyncio.IncompleteReadError) as error:
                self.errors[type(error).__name__] += 1
                await asyncio.sleep(0.05)  # don't spin on a refusing server

    async def connection(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        buf = b""
        try:
            for _ in range(self.rng.randint(1, MAX_REQUESTS_PER_CONNECTION)):
                if not self.more():
                    break
                self.started += 1
                _, raw, label, expected = self.rng.choices(_REQUESTS, self.weights)[0]
                writer.write(raw)
                response, buf = await asyncio.wait_for(self._response(reader, buf), REQUEST_TIMEOUT)
                if response is None:
                    self.errors["closed by server"] += 1
                    return
                self.done += 1
                self.statuses[f"{label} {response.status}"] += 1
                if response.status != expected:
                    self.errors[f"{label}: {response.status} (expected {expected})"] += 1
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    @staticmethod
    async def _response(reader: asyncio.StreamReader, buf: bytes):  # -> tuple[Response | None, bytes]
        eof = False
        while True:
            parsed = parse_response(buf, eof=eof)
            if parsed is not None:
                response, used = parsed
                return response, buf[used:]
            if eof:
                return None, buf
            data = await reader.read(65536)
            eof = not data
            buf += data


async def _run(
    host: str,
    port: int,
    pids: list[int],
    report: SoakReport,
    max_requests: int,
    interval: float,
    progress: Callable[[Sample], None] | None,
    seed: int,
) -> None:
    started = time.monotonic()
    load = _Load(host, port, started + report.duration, max_requests, seed)

    async def sampler() -> None:
        while True:
            sample = measure(pids, started, load.done)
            report.samples.append(sample)
            if progress is not None:
                progress(sample)
            await asyncio.sleep(interval)

    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(load.client() for _ in range(report.concurrency)))
    finally:
        # Also on Ctrl-C (asyncio.run cancels this task): the report keeps what was done.
        sampling.cancel()
        report.elapsed = round(time.monotonic() - started, 2)
        report.requests = load.done
        report.statuses = dict(sorted(load.statuses.items()))
        report.errors = dict(load.errors)


def settle_fds(pids: list[int], target: int, timeout: float = 5.0) -> int:
    """The servers' descriptor count once closed connections have been reaped: poll until
    it is back to ``target`` or ``timeout`` passes (a server closes a socket after it
    notices the client's FIN, which takes it a moment under load)."""
    deadline = time.monotonic() + timeout
    count = sum(map(process_fds, pids))
    while count > target and time.monotonic() < deadline:
        time.sleep(0.1)
        count = sum(map(process_fds, pids))
    return count


def soak_url(
    host: str,
    port: int,
    pids: list[int],
    report: SoakReport,
    max_requests: int = 10_000_000,
    interval: float = 1.0,
    progress: Callable[[Sample], None] | None = None,
    seed: int = 0,
) -> SoakReport:
    """Run the load against a server already listening (its processes are ``pids``).

    Ctrl-C ends the load early: the report is returned with ``interrupted`` set and the
    figures of the time it ran (the "after" counts are taken all the same).
    """
    report.processes = len(pids)
    report.fds_before = sum(map(process_fds, pids))
    report.rss_before = sum(map(process_rss, pids))
    try:
        asyncio.run(_run(host, port, pids, report, max_requests, interval, progress, seed))
    except KeyboardInterrupt:
        report.interrupted = True
    report.fds_after = settle_fds(pids, report.fds_before, timeout=1.0 if report.interrupted else 5.0)
    report.rss_after = sum(map(process_rss, pids))
    return report


def soak(
    layer: str,
    server: str,
    duration: float = 60.0,
    concurrency: int = 256,
    max_requests: int = 10_000_000,
    interval: float = 1.0,
    progress: Callable[[Sample], None] | None = None,
    seed: int = 0,
    workers: int | None = None,
    threads: int | None = None,
) -> SoakReport:
    """Start ``layer`` on ``server`` through the registry, soak it, stop it."""
    from servers.registry import ServerOptions  # noqa: PLC0415 -- imports every layer
    from servers.supervise import start_server  # noqa: PLC0415 -- imports every layer

    options = ServerOptions(access_log=False, workers=workers, threads=threads)
    with start_server(server, layer, options) as running:
        report = SoakReport(server, layer, running.native_command, duration, concurrency)
        # Let a pre-forking server finish starting its workers before the "before" count.
        time.sleep(0.5)
        return soak_url(
            running.host, running.port, running.process_group(), report, max_requests, interval, progress, seed
        )
