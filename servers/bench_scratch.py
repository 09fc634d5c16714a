"""How fast are the scratch servers next to the servers they are modelled on?  A benchmark script, not a test.

Theory of operation
-------------------
Two pairs, each measured side by side in one run, on the contract's ``GET /plaintext`` of the raw layers (no
framework in the way, so what differs is the server):

=====================================================  =========================================================
ours                                                   reference
=====================================================  =========================================================
``scratch-asgi`` serving ``bare_asgi``                 ``uvicorn --http h11 --loop asyncio`` serving ``bare_asgi``
``scratch-wsgi --threads 8`` serving ``bare_wsgi``     ``gunicorn -k gthread -w 1 --threads 8`` serving ``bare_wsgi``
=====================================================  =========================================================

Same parser (h11) on the ASGI side, same concurrency model (a selector thread and a pool of 8) on the WSGI side,
so the ratios measure the code around them.  Method:

* the server is pinned to CPU 0 and wrk to CPU 1 (``taskset``), so they do not compete for a core;
* wrk: one thread, 64 connections (``-t1 -c64``), ``--latency`` off, keep-alive;
* every server is started fresh, warmed up for one second, then measured; the rounds are **interleaved**
  (ours, theirs, ours, theirs ...) so a background load spike hits both sides alike;
* each side's result is the **median** requests/second over the rounds; the ratio is ours / theirs.  A second
  figure, the median of the *per-round* ratios, pairs each measurement with its neighbour run seconds apart, so a
  load spike from another process that hits one round spoils one ratio instead of shifting a whole side.

The access logs are off on every server (uvicorn's is on by default; writing a log line per request would
dominate).  The environment (CPU, package versions, load average) is printed with the result, because numbers from
a busy machine are only good as ratios.

Usage::

    python -m servers.bench_scratch                  # 5 rounds of 5 s per side (about 2 minutes)
    python -m servers.bench_scratch --rounds 3 --duration 3 --pair asgi
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# name -> command template ({port} filled in); the server CPU pin is added in front.
SERVERS = {
    "scratch-asgi": [
        PY,
        "-m",
        "servers.scratch_asgi",
        "layers.bare_asgi.app:app",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
    ],
    "uvicorn-h11": [
        PY,
        "-m",
        "uvicorn",
        "layers.bare_asgi.app:app",
        "--http",
        "h11",
        "--loop",
        "asyncio",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
    ],
    "scratch-wsgi": [
        PY,
        "-m",
        "servers.scratch_wsgi",
        "layers.bare_wsgi.app:app",
        "--threads",
        "8",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
    ],
    "gunicorn-gthread": [
        PY,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "-w",
        "1",
        "--threads",
        "8",
        "-b",
        "127.0.0.1:{port}",
        "--log-level",
        "warning",
        "layers.bare_wsgi.app:app",
    ],
}
PAIRS = {"asgi": ("scratch-asgi", "uvicorn-h11"), "wsgi": ("scratch-wsgi", "gunicorn-gthread")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, cpu: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [part.format(port=port) for part in SERVERS[name]]
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}/plaintext"
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited during startup: {' '.join(command)}") from None
            time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"{name} did not listen within 20 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wrk(url: str, duration: float, connections: int, cpu: str) -> tuple[float, int]:
    """Requests/second and the number of socket errors + non-2xx answers wrk saw."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", url]  # wrk wants whole seconds
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    rps = float(match.group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, errors + (int(bad.group(1)) if bad else 0)


def measure(name: str, duration: float, connections: int) -> tuple[float, int]:
    proc, url = start(name, "0")
    try:
        wrk(url, 1, connections, "1")  # warm-up: imports done, caches filled, connections established once
        return wrk(url, duration, connections, "1")
    finally:
        stop(proc)


def environment() -> dict[str, object]:
    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "wrk": wrk_version.strip(),
        **{pkg: ver(pkg) for pkg in ("h11", "wsproto", "uvicorn", "gunicorn")},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pair", choices=["asgi", "wsgi", "both"], default="both")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    pairs = [PAIRS[args.pair]] if args.pair != "both" else list(PAIRS.values())
    env = environment()
    print(f"environment: {json.dumps(env)}")
    results: dict[str, list[float]] = {name: [] for pair in pairs for name in pair}
    errors: dict[str, int] = dict.fromkeys(results, 0)
    for round_number in range(args.rounds):
        for pair in pairs:
            order = pair if round_number % 2 == 0 else pair[::-1]  # alternate who goes first
            for name in order:
                rps, errs = measure(name, args.duration, args.connections)
                results[name].append(rps)
                errors[name] += errs
                print(f"round {round_number + 1}: {name:17} {rps:9.0f} req/s  errors {errs}", flush=True)
    summary = {}
    print()
    for ours, theirs in pairs:
        a, b = statistics.median(results[ours]), statistics.median(results[theirs])
        paired = statistics.median(x / y for x, y in zip(results[ours], results[theirs], strict=True))
        summary[f"{ours} / {theirs}"] = {
            "ratio_of_medians": round(a / b, 3),
            "median_of_round_ratios": round(paired, 3),
        }
        print(
            f"{ours:13} median {a:8.0f} req/s   {theirs:17} median {b:8.0f} req/s   "
            f"ratio {a / b:.2f}x   (median of per-round ratios {paired:.2f}x)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"environment": env, "args": vars(args), "rps": results, "errors": errors, "ratios": summary}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
