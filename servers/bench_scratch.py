"""How fast are the scratch servers next to the servers they are modelled on?  A benchmark script, not a test.

Theory of operation
-------------------
A matrix, measured side by side in one run, on the contract's ``GET /plaintext`` of the raw layers (no framework in
the way, so what differs is the server): each parser x event loop of ours beside uvicorn's same pairs, the threaded
WSGI server beside waitress and gunicorn, granian and the socket floor as the far references.  ``ROWS`` is the
matrix; ``GOALS`` the ratios the issues ask for (ours / theirs, with the minimum and the aim):

=====================================================  =========================================================
ours                                                   reference
=====================================================  =========================================================
``scratch-asgi --http httptools --loop uvloop``        ``uvicorn --http httptools --loop uvloop``   (>= 1.0, aim 1.2)
``scratch-wsgi --http httptools --threads 8``          ``waitress --threads=8``                     (>= 1.0, aim 1.3)
``scratch-wsgi --http httptools --threads 8``          ``gunicorn -k gthread -w 1 --threads 8``     (>= 2.0)
``scratch-asgi --http h11 --loop asyncio``             ``uvicorn --http h11 --loop asyncio``        (>= 1.3)
``scratch-wsgi --http h11 --threads 8``                ``gunicorn -k gthread -w 1 --threads 8``     (>= 1.3)
=====================================================  =========================================================

Every server is started through the registry (``servers/registry.py``), so the command it runs is the one
``layercake serve`` prints.  Method:

* the server is pinned to CPU 0 and wrk to CPU 1 (``taskset``), so they do not compete for a core;
* wrk: one thread, 64 connections (``-t1 -c64``), ``--latency`` off, keep-alive;
* every server is started fresh, warmed up for one second, then measured; the rounds are **interleaved** (every row
  once, then again in the reverse order ...) so a background load spike hits every row alike;
* each row's result is the **median** requests/second over the rounds; a ratio is ours / theirs of the medians.  A
  second figure, the median of the *per-round* ratios, pairs each measurement with its neighbour run seconds apart, so
  a load spike from another process that hits one round spoils one ratio instead of shifting a whole side;
* the floor (``layercake.bench.floor``: an asyncio protocol answering fixed bytes, no parsing) gives each row's
  fraction of what this socket can do at all.

Then, in process, what the parser costs (``layercake/bench/parsers.py``): µs and Python calls to parse one request
and to answer it, per parser backend; and what a whole request costs scratch-asgi and uvicorn with the socket left
out (``layercake/bench/request_cost.py``): their protocol classes on a real loop, a transport that only counts.

The access logs are off on every server (uvicorn's is on by default; writing a log line per request would
dominate).  The environment (CPU, package versions, load average) is printed with the result, because numbers from
a busy machine are only good as ratios.

Usage::

    python -m servers.bench_scratch                          # every row, 3 rounds of 3 s (about 4 minutes)
    python -m servers.bench_scratch --rows goals             # only the rows the goals need (about 2 minutes)
    python -m servers.bench_scratch --rows scratch-asgi/httptools+uvloop,uvicorn/httptools+uvloop --rounds 5
    python -m servers.bench_scratch --parsers                # only the two in-process tables
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
import textwrap
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LAYERS = {"asgi": "layers.bare_asgi.app:app", "wsgi": "layers.bare_wsgi.app:app"}


@dataclass(frozen=True)
class Row:
    """One server configuration: a registry name and the ServerOptions fields it runs with."""

    label: str
    server: str  # a registry name, or "floor"
    options: dict[str, object] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        if self.server == "floor":
            return [PY, "-m", "layercake.bench.floor", "--port", str(port)]
        from servers.registry import ServerOptions, get_server

        spec = get_server(self.server)
        log_level = None if spec.program == "waitress-serve" else "warning"  # waitress has no --log-level
        opts = ServerOptions(port=port, log_level=log_level, **self.options)  # type: ignore[arg-type]  # the row's fields
        return spec.argv(LAYERS[spec.interface], opts)


def _matrix() -> list[Row]:
    rows = []
    for http in ("h11", "httptools"):
        for loop in ("asyncio", "uvloop"):
            rows.append(Row(f"scratch-asgi/{http}+{loop}", "scratch-asgi", {"http": http, "loop": loop}))
            rows.append(Row(f"uvicorn/{http}+{loop}", "uvicorn", {"http": http, "loop": loop}))
    for http in ("h11", "httptools"):
        rows.append(Row(f"scratch-wsgi/{http}", "scratch-wsgi", {"http": http, "threads": 8}))
    rows += [
        Row("waitress/8-threads", "waitress", {"threads": 8}),
        Row("gunicorn-gthread/8-threads", "gunicorn-gthread", {"threads": 8, "workers": 1}),
        Row("granian-asgi", "granian-asgi", {"workers": 1}),
        Row("granian-wsgi", "granian-wsgi", {"workers": 1}),
        Row("floor", "floor"),
    ]
    return rows


ROWS = {row.label: row for row in _matrix()}
#: (ours, theirs, minimum, aim): the ratios the issues ask for.
GOALS = [
    ("scratch-asgi/httptools+uvloop", "uvicorn/httptools+uvloop", 1.0, 1.2),
    ("scratch-wsgi/httptools", "waitress/8-threads", 1.0, 1.3),
    ("scratch-wsgi/httptools", "gunicorn-gthread/8-threads", 2.0, 2.0),
    ("scratch-asgi/h11+asyncio", "uvicorn/h11+asyncio", 1.3, 1.3),
    ("scratch-wsgi/h11", "gunicorn-gthread/8-threads", 1.3, 1.3),
]
GOAL_ROWS = list(dict.fromkeys([r for ours, theirs, _, _ in GOALS for r in (ours, theirs)] + ["floor"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(row: Row, cpu: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = row.command(port)
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return proc, f"http://127.0.0.1:{port}/plaintext"
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"{row.label} exited during startup: {' '.join(command)}") from None
                time.sleep(0.1)
        raise SystemExit(f"{row.label} did not listen within 20 s")
    except BaseException:  # a failed start, or Ctrl-C while waiting: the server is in its own session, so stop it
        stop(proc)
        raise


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wrk(url: str, duration: float, connections: int, cpu: str) -> tuple[float, int, int]:
    """Requests/second, the number of socket errors + non-2xx answers wrk saw, and the requests completed."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", url]  # wrk wants whole seconds
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if match is None or count is None:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    rps = float(match.group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, errors + (int(bad.group(1)) if bad else 0), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and every process below it, from /proc (0 elsewhere)."""
    total, pending, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (man 5 proc: fields 14, 15)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return total


def measure(row: Row, duration: float, connections: int) -> tuple[float, int, float]:
    """(req/s, errors, server CPU µs per request).  The last is the steadier figure on a shared machine: another
    process that takes the server's CPU lowers its req/s, not the CPU each request costs."""
    proc, url = start(row, "0")
    try:
        wrk(url, 1, connections, "1")  # warm-up: imports done, caches filled, connections established once
        before = cpu_seconds(proc.pid)
        rps, errors, count = wrk(url, duration, connections, "1")
        return rps, errors, (cpu_seconds(proc.pid) - before) / max(count, 1) * 1e6
    finally:
        stop(proc)


def environment() -> dict[str, object]:
    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    wrk_version = ""  # --parsers runs without wrk
    if shutil.which("wrk"):
        wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "wrk": wrk_version.strip(),
        **{
            pkg: ver(pkg)
            for pkg in ("h11", "h11-mypyc", "httptools", "uvloop", "uvicorn", "gunicorn", "waitress", "granian")
        },
    }


def _rows(spec: str) -> list[Row]:
    if spec == "all":
        return list(ROWS.values())
    names = GOAL_ROWS if spec == "goals" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        choices = textwrap.fill(", ".join([*ROWS, "all", "goals"]), 78, initial_indent="  ", subsequent_indent="  ")
        raise SystemExit(f"bench_scratch: unknown row {', '.join(unknown)}; the rows are:\n{choices}")
    return [ROWS[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m servers.bench_scratch", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="measurements of every row, interleaved (default 3)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    p.add_argument("--connections", type=int, default=64, help="wrk's open connections (default 64)")
    p.add_argument("--rows", default="all", help="all (default), goals, or comma-separated row labels")
    p.add_argument("--parsers", action="store_true", help="only the in-process tables: the parser, a whole request")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    from layercake.bench import request_cost
    from layercake.bench.parsers import parser_costs, render

    if args.parsers:
        parser_rows, request_rows = parser_costs(), request_cost.request_costs()
        print(render(parser_rows))
        print()
        print(request_cost.render(request_rows))
        if args.json:
            doc = {
                "environment": environment(),
                "args": vars(args),
                "parser_costs": [c.to_dict() for c in parser_rows],
                "request_costs": [r.to_dict() for r in request_rows],
            }
            Path(args.json).write_text(json.dumps(doc, indent=2))
        return 0
    if not shutil.which("wrk"):
        print("wrk is not installed (apt install wrk)", file=sys.stderr)
        return 2
    rows = _rows(args.rows)
    from servers.registry import get_server

    missing = [
        f"{r.label} ({req.package})"
        for r in rows
        if r.server != "floor" and (req := get_server(r.server).missing) is not None
    ]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} -- pip install 'layercake[servers]'", file=sys.stderr)
        rows = [r for r in rows if r.server == "floor" or get_server(r.server).available]
    env = environment()
    print(f"environment: {json.dumps(env)}")
    results: dict[str, list[float]] = {r.label: [] for r in rows}
    cpu_us: dict[str, list[float]] = {r.label: [] for r in rows}
    errors: dict[str, int] = dict.fromkeys(results, 0)
    interrupted = False  # Ctrl-C: summarise and write what was measured, then exit 130 as the shell expects
    try:
        for round_number in range(args.rounds):
            order = rows if round_number % 2 == 0 else rows[::-1]  # alternate who goes first
            for row in order:
                rps, errs, cpu = measure(row, args.duration, args.connections)
                results[row.label].append(rps)
                cpu_us[row.label].append(cpu)
                errors[row.label] += errs
                print(
                    f"round {round_number + 1}: {row.label:29} {rps:6.0f} req/s {cpu:6.1f} µs CPU/req {errs:3d} errors",
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the rounds measured so far are summarised", file=sys.stderr)
        results = {k: v for k, v in results.items() if v}
    medians = {label: statistics.median(v) for label, v in results.items() if v}
    floor = medians.get("floor")
    print()
    print(f"{'row (medians)':29} {'req/s':>7} {'min-max':>13} {'of floor':>8} {'µs CPU/req':>10}")
    for label, rps in sorted(medians.items(), key=lambda kv: -kv[1]):
        spread = f"{min(results[label]):.0f}-{max(results[label]):.0f}"
        fraction = f"{rps / floor:7.2f}x" if floor else ""
        print(f"{label:29} {rps:7.0f} {spread:>13} {fraction:>8} {statistics.median(cpu_us[label]):10.1f}")
    summary = {}
    print()
    for ours, theirs, minimum, aim in GOALS:
        if ours not in medians or theirs not in medians:
            continue
        n = min(len(results[ours]), len(results[theirs]))
        a, b = medians[ours], medians[theirs]
        paired = statistics.median(x / y for x, y in zip(results[ours][:n], results[theirs][:n], strict=True))
        verdict = "aim met" if a / b >= aim else "goal met" if a / b >= minimum else "BELOW the goal"
        # CPU per request, theirs / ours: the same comparison from the figure a busy machine disturbs least.
        by_cpu = statistics.median(cpu_us[theirs]) / statistics.median(cpu_us[ours])
        summary[f"{ours} / {theirs}"] = {
            "ratio_of_medians": round(a / b, 3),
            "median_of_round_ratios": round(paired, 3),
            "cpu_per_request_ratio": round(by_cpu, 3),
            "goal": minimum,
            "aim": aim,
        }
        print(f"{ours} / {theirs}")  # two lines per goal, to fit 80 columns
        print(
            f"  {a / b:5.2f}x (per-round {paired:.2f}x, by CPU/request {by_cpu:.2f}x); "
            f"goal >= {minimum}, aim {aim}: {verdict}"
        )
    costs: list[Any] = []
    requests: list[Any] = []
    try:  # the in-process tables after the sockets: an interruption here keeps the rounds (and writes the JSON)
        if interrupted:
            raise KeyboardInterrupt
        costs = parser_costs()
        print()
        print(render(costs))
        requests = request_cost.request_costs()
        print()
        print(request_cost.render(requests))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the in-process tables are left out", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": env,
                    "args": vars(args),
                    "rps": results,
                    "cpu_us_per_request": cpu_us,
                    "errors": errors,
                    "ratios": summary,
                    "parser_costs": [c.to_dict() for c in costs],
                    "request_costs": [r.to_dict() for r in requests],
                },
                indent=2,
            )
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
