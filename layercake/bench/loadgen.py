"""Load generation: wrk when it is installed, a built-in generator when it is not.

Theory of operation
-------------------
A benchmark run is one *load*: ``concurrency`` keep-alive connections sending one
request at a time (closed loop, as wrk does) to one URL for ``duration`` seconds.
Its outcome is a :class:`LoadResult`: how many requests completed, how many were
errors and of which kind, and latency percentiles in microseconds.

**wrk** (github.com/wg/wrk) is the default.  It runs with one thread (``-t1``: on a
two-core machine the generator gets one core and the server the other) and with
``layercake.lua`` (next to this file), which sets the method and body from the environment and
prints a ``LAYERCAKE_RESULT {json}`` line from wrk's ``done()`` hook, so we read the
latency histogram exactly instead of parsing rounded text.  :func:`parse_wrk_output`
still understands wrk's plain text (for output captured by hand, and as a check that
the two agree).  wrk counts a response with status >= 400 as a "status" error; our
pre-flight check (``endpoints.quick_check`` or the contract) has already confirmed
the exact status of every benchmarked request, so a 3xx cannot pass unnoticed.

**The built-in generator** (``python -m layercake.bench.loadgen``) is an asyncio
client with the same closed-loop shape, run as its own process so it never shares a
GIL with the harness.  It prints the same ``LAYERCAKE_RESULT`` line, so one parser
reads both.  It is honest about what it is: one Python process can generate only so
many requests per second, so results from it carry ``generator="builtin"`` and a
measured ceiling (its own rate against the floor server on this machine); a server
that reaches the ceiling is faster than the generator can tell.

Pinning: on Linux with two or more CPUs the generator runs under ``taskset -c CPU``
(the server is pinned by ``runner.py``), so client and server never compete for the
same core.

What this module deliberately doesn't do: open-loop (constant-rate) load, HTTP/2,
or pipelining -- none of which the ladder's question ("what does this layer cost per
request?") needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from layercake.errors import LayercakeError

LUA_SCRIPT = Path(__file__).resolve().parent / "layercake.lua"  # package data ("*.lua" in pyproject)
RESULT_MARKER = "LAYERCAKE_RESULT "
PERCENTILES = ("50", "75", "90", "99", "99.9")

Generator = Literal["wrk", "builtin"]


@dataclass(frozen=True)
class Request:
    """What each connection sends, over and over."""

    method: str = "GET"
    path: str = "/"
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class LoadResult:
    """The outcome of one load, whichever generator produced it."""

    generator: str
    requests: int
    duration_s: float
    bytes_read: int
    errors: dict[str, int]  # connect, read, write, timeout (socket errors) and status (HTTP status >= 400)
    latency_us: dict[str, float]  # min, max, mean, stdev, p50, p75, p90, p99, p99.9
    raw: str = field(default="", repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(n for kind, n in self.errors.items() if kind != "status")

    @property
    def non_2xx(self) -> int:
        return self.errors.get("status", 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["raw"]
        out["rps"] = round(self.rps, 2)
        return out


# --- parsing --------------------------------------------------------------------------------------------------------

_UNITS_US = {"us": 1.0, "ms": 1_000.0, "s": 1_000_000.0, "m": 60_000_000.0, "h": 3_600_000_000.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _duration_us(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]  # wrk prints only these units; a mismatch should raise
    return float(number) * _UNITS_US[unit]


def _bytes(text: str) -> int:
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?B)", text).groups()  # type: ignore[union-attr]  # wrk prints only these units; a mismatch should raise
    return int(float(number) * _BYTES[unit])


def parse_result_line(text: str, generator: str) -> LoadResult | None:
    """The ``LAYERCAKE_RESULT`` line of wrk + our Lua script, or of the built-in generator."""
    for line in text.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER) :])
            lat = data["latency_us"]
            latency = {k: float(lat[k]) for k in ("min", "max", "mean", "stdev")}
            latency.update({f"p{p}": float(lat["percentiles"][p]) for p in PERCENTILES})
            return LoadResult(
                generator=generator,
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                bytes_read=int(data["bytes"]),
                errors={k: int(v) for k, v in data["errors"].items()},
                latency_us=latency,
                raw=text,
            )
    return None


def parse_wrk_text(text: str) -> LoadResult:
    """wrk's human-readable summary (``--latency`` for percentiles), e.g. output captured by hand.

    Precision is what wrk prints: two decimals and a unit for latencies, three
    significant figures or so for bytes.  The ``LAYERCAKE_RESULT`` line is exact.
    """
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+[KMGT]?B) read", text)
    if not m:
        raise ValueError("not wrk output: no 'N requests in T, B read' line")
    requests, duration, read = int(m.group(1)), _duration_us(m.group(2)) / 1e6, _bytes(m.group(3))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    if m2 := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, m2.groups()), strict=True))
    if m3 := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors["status"] = int(m3.group(1))
    latency: dict[str, float] = {}
    if m4 := re.search(r"Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", text):
        latency["mean"], latency["stdev"], latency["max"] = (_duration_us(g) for g in m4.groups())
    for p, value in re.findall(r"^\s+([\d.]+)%\s+([\d.]+\w+)\s*$", text, re.M):
        latency[f"p{p.rstrip('0').rstrip('.') if '.' in p else p}"] = _duration_us(value)
    return LoadResult("wrk", requests, duration, read, errors, latency, raw=text)


def parse_wrk_output(text: str) -> LoadResult:
    """Everything wrk printed: the exact Lua line when present, else the text summary."""
    return parse_result_line(text, "wrk") or parse_wrk_text(text)


# --- running --------------------------------------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def choose_generator(preferred: str = "auto") -> Generator:
    """``auto``: wrk when installed, else the built-in generator."""
    if preferred == "wrk" and not wrk_path():
        raise LayercakeError("--generator wrk: wrk is not installed (apt install wrk, or use --generator builtin)")
    if preferred in ("wrk", "builtin"):
        return preferred  # type: ignore[return-value]  # narrowed to the two literals by the test above
    return "wrk" if wrk_path() else "builtin"


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when pinning is possible, else nothing."""
    if cpu is None or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def _request_env(request: Request) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LAYERCAKE_METHOD=request.method,
        LAYERCAKE_BODY=request.body.decode(),
        LAYERCAKE_CTYPE=request.content_type,
    )
    return env


def wrk_command(url: str, concurrency: int, duration: float, timeout: float = 10.0) -> list[str]:
    """The wrk invocation; also what the docs tell a reader to type to check us by hand."""
    return [
        wrk_path() or "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]


def builtin_command(url: str, request: Request, concurrency: int, duration: float, timeout: float = 10.0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "layercake.bench.loadgen",
        url,
        "--method",
        request.method,
        "--concurrency",
        str(concurrency),
        "--duration",
        f"{duration:g}",
        "--timeout",
        f"{timeout:g}",
    ]


def run_load(
    base_url: str,
    request: Request,
    concurrency: int,
    duration: float,
    *,
    generator: Generator = "wrk",
    cpu: int | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """One load against ``base_url + request.path``; blocks for about ``duration`` seconds.

    wrk takes whole seconds (``-d1s``), so a fractional duration is rounded there;
    the result's ``duration_s`` is the measured one either way.
    """
    url = base_url.rstrip("/") + request.path
    if generator == "wrk":
        command = wrk_command(url, concurrency, duration, timeout)
    else:
        command = builtin_command(url, request, concurrency, duration, timeout)
    limit = duration + timeout + 30  # a generator that hangs is a bug; never wait forever
    try:
        done = subprocess.run(
            pin_prefix(cpu) + command, env=_request_env(request), capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        raise LayercakeError(f"{generator} did not finish within {limit:.0f} s: {' '.join(command)}") from None
    result = parse_result_line(done.stdout, generator)
    if result is None:
        tail = (done.stderr or done.stdout).strip()[-500:]
        raise LayercakeError(f"{generator} failed (exit {done.returncode}) against {url}: {tail}")
    return result


# --- the built-in generator --------------------------------------------------------------------------------------------


def encode_request(request: Request, host: str) -> bytes:
    head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    if request.body or request.method == "POST":
        head += [f"Content-Type: {request.content_type}", f"Content-Length: {len(request.body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one response; return (status, bytes read).  Content-Length or chunked (RFC 9112 §6.3)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    size = len(head)
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line.split(b";")[0], 16)
            chunk = await reader.readexactly(length + 2)
            size += len(line) + len(chunk)
            if length == 0:
                break
    elif (i := lowered.find(b"content-length:")) >= 0:
        length = int(lowered[i + 15 : lowered.index(b"\r\n", i)])
        size += len(await reader.readexactly(length))
    return status, size


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _generate(url: str, request: Request, concurrency: int, duration: float, timeout: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = Request(
        request.method, parts.path + (f"?{parts.query}" if parts.query else ""), request.body, request.content_type
    )
    payload = encode_request(request, parts.netloc)
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    total_bytes = 0
    start = time.perf_counter()
    deadline = start + duration

    async def connection() -> None:
        nonlocal total_bytes
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (TimeoutError, OSError):
                errors["connect"] += 1
                await asyncio.sleep(0.01)
                continue
            try:
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    try:
                        writer.write(payload)
                    except OSError:
                        errors["write"] += 1
                        break
                    try:
                        status, size = await asyncio.wait_for(_read_response(reader), timeout)
                    except TimeoutError:
                        errors["timeout"] += 1
                        break
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        errors["read"] += 1
                        break
                    latencies.append((time.perf_counter() - sent) * 1e6)
                    total_bytes += size
                    if status >= 400:  # the same rule as wrk's "Non-2xx or 3xx responses"
                        errors["status"] += 1
            finally:
                writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    mean = sum(latencies) / n if n else 0.0
    stdev = (sum((x - mean) ** 2 for x in latencies) / n) ** 0.5 if n else 0.0
    return {
        "duration_us": int(elapsed * 1e6),
        "requests": n,
        "bytes": total_bytes,
        "errors": errors,
        "latency_us": {
            "min": round(latencies[0], 1) if n else 0,
            "max": round(latencies[-1], 1) if n else 0,
            "mean": round(mean, 2),
            "stdev": round(stdev, 2),
            "percentiles": {p: round(percentile(latencies, float(p)), 1) for p in PERCENTILES},
        },
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m layercake.bench.loadgen URL``: the built-in generator as its own process."""
    parser = argparse.ArgumentParser(
        prog="python -m layercake.bench.loadgen", description="layercake's built-in closed-loop HTTP/1.1 load generator"
    )
    parser.add_argument("url")
    parser.add_argument("--method", default=os.environ.get("LAYERCAKE_METHOD") or "GET")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    request = Request(
        args.method,
        "/",
        os.environ.get("LAYERCAKE_BODY", "").encode(),
        os.environ.get("LAYERCAKE_CTYPE") or "application/json",
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(_generate(args.url, request, args.concurrency, args.duration, args.timeout))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
