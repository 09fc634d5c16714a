"""The measured figures the reader and the site quote: where they come from, and when.

Theory of operation
-------------------
layercake never types a number into a page.  Every figure the reader and the site show
-- per-request µs, Python calls and source lines executed (the in-process counters),
requests per second over real sockets -- is read from the benchmark results that
``layercake bench`` writes as JSON into ``docs/bench/`` (the schema is the benchmark
engineer's, documented in :mod:`layercake.bench`).  :func:`load_figures` reads the most
recent result file of each kind and keeps where each figure came from and when it was
measured, so a page can say "measured 2026-11-29 02:10 UTC (docs/bench/ladder.json)".

The in-process counters are deterministic (the same calls and lines on a busy machine
as on a quiet one), so when no stored result covers a layer, :func:`figures_for` can
measure it on the spot with the benchmark's own :func:`layercake.bench.costs.quick_ladder`
(about half a second a layer, in a subprocess) and labels the figure "measured just
now".  Requests per second are never measured here: that takes a load generator,
pinned CPUs and minutes, and belongs to ``layercake bench``; when no result file holds
them, callers say so and name the command (:data:`HOW_TO_MEASURE`).  Nothing is
estimated and nothing is typed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layercake.errors import LayercakeError

PROJECT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT / "docs" / "bench"

HOW_TO_MEASURE = {
    "in_process": "layercake bench --in-process --json docs/bench/inprocess.json",
    "ladder": "layercake bench --json docs/bench/ladder.json --markdown docs/bench/ladder.md --charts docs/bench/",
}

# Packages of the in-process counters that are not library code: the layer's own code
# (and layers/shared), and the driver that stands in for a server.
NOT_LIBRARY = ("layer", "driver", "server")


@dataclass
class Cost:
    """One layer's in-process cost per request (one endpoint)."""

    layer: str
    endpoint: str
    us: float | None
    calls: int | None
    lines: int | None  # distinct source lines executed
    by_package: dict[str, dict[str, int]] = field(default_factory=dict)  # package -> {"calls", "lines"}
    measured_at: str | None = None
    origin: str = ""  # the file the figure came from
    machine: str = ""  # what it was measured on ("AMD EPYC, 2 CPUs, CPython 3.11.7"); "" unknown

    @property
    def provenance(self) -> str:
        return provenance(self.measured_at, self.origin, self.machine)

    @property
    def library_lines(self) -> int | None:
        """Distinct lines executed in libraries (framework, stdlib, ...): not the layer's
        own code nor the driver standing in for the server.  None when not broken down."""
        if not self.by_package:
            return None
        return sum(n.get("lines", 0) for pkg, n in self.by_package.items() if pkg.lower() not in NOT_LIBRARY)

    def summary(self) -> str:
        parts = []
        if self.us is not None:
            parts.append(f"{self.us:,.1f} µs")
        if self.calls is not None:
            parts.append(f"{self.calls:,} Python calls")
        if self.lines is not None:
            parts.append(f"{self.lines:,} distinct lines run")
        return ", ".join(parts) + f" ({self.endpoint} endpoint, in-process, no socket)"


@dataclass
class Throughput:
    """Requests per second of one layer on one server, one endpoint (median of runs)."""

    layer: str
    server: str
    endpoint: str
    concurrency: int | None
    rps: float
    rps_min: float | None = None
    rps_max: float | None = None
    errors: int = 0
    measured_at: str | None = None
    origin: str = ""
    machine: str = ""
    #: The server's options in a matrix run (``servers/bench_scratch.py``): ``httptools+uvloop``, ``8-threads`` ...
    variant: str = ""

    @property
    def provenance(self) -> str:
        return provenance(self.measured_at, self.origin, self.machine)

    @property
    def server_label(self) -> str:
        """The server, with its options when the run compared several."""
        return f"{self.server} {self.variant}" if self.variant else self.server


@dataclass
class Figures:
    costs: dict[str, Cost] = field(default_factory=dict)  # by layer name
    throughput: list[Throughput] = field(default_factory=list)
    origin: str = ""  # the in-process result file
    measured_at: str | None = None
    ladder_origin: str = ""
    ladder_measured_at: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # layer -> why it could not be measured
    # Our servers against their references, side by side (servers/bench_scratch.py's
    # docs/bench/scratch-servers.json): kept apart from the ladder, whose servers differ.
    servers: list[Throughput] = field(default_factory=list)

    @property
    def machine(self) -> str:
        """What the stored figures were measured on, from their environment record."""
        return machine_of(self.environment)

    @property
    def provenance(self) -> str:
        """ "measured WHEN on MACHINE (FILE)" for the per-request figures."""
        return provenance(self.measured_at, self.origin, self.machine)

    def server_rps(self, server: str) -> list[Throughput]:
        """Every measured req/s of ``server``: the ladder's rows on it, then the servers' comparison."""
        rows = [t for t in self.throughput if t.server == server] + [t for t in self.servers if t.server == server]
        return sorted(rows, key=lambda t: -t.rps)

    def cost(self, layer: str) -> Cost | None:
        return self.costs.get(layer)

    def rps(self, layer: str, endpoint: str | None = None) -> Throughput | None:
        """The best-concurrency median req/s of ``layer`` on ``endpoint``, if measured.

        With no endpoint: ``json`` (the endpoint the in-process figures describe), else
        ``plaintext``, else the first one measured.
        """
        mine = [t for t in self.throughput if t.layer == layer]
        if endpoint is None:
            measured = [t.endpoint for t in mine]
            endpoint = next((e for e in ("json", "plaintext", *measured) if e in measured), None)
        found = [t for t in mine if t.endpoint == endpoint]
        return max(found, key=lambda t: t.rps) if found else None

    @property
    def empty(self) -> bool:
        return not self.costs and not self.throughput


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


def load_figures(bench_dir: Path | None = None) -> Figures:
    """The newest in-process and over-the-socket figures found in ``bench_dir`` (docs/bench)."""
    bench_dir = bench_dir if bench_dir is not None else BENCH_DIR
    figures = Figures()
    if not bench_dir.is_dir():
        return figures
    files = sorted(bench_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if not figures.costs:
            costs, when = _costs(data, _display(path))
            if costs:
                figures.costs, figures.origin, figures.measured_at = costs, _display(path), when
                figures.environment = figures.environment or _environment(data)
        if not figures.throughput:
            runs, when = _throughput(data, _display(path))
            if runs:
                figures.throughput, figures.ladder_origin, figures.ladder_measured_at = runs, _display(path), when
                figures.environment = _environment(data) or figures.environment
        if not figures.servers:
            figures.servers = _server_pairs(data, path)
    return figures


# --- Reading the result files ---


def _environment(data: dict[str, Any]) -> dict[str, Any]:
    env = data.get("environment") or data.get("env") or {}
    return env if isinstance(env, dict) else {}


def _when(data: dict[str, Any]) -> str | None:
    env = _environment(data)
    for source in (data, env):
        for key in ("measured_at", "started_at", "timestamp", "time", "date", "finished_at"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _number(value: Any) -> float | None:
    """A figure that may be a bare number or a {"median": ...} summary."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return _number(value.get("median"))
    return None


def machine_of(env: dict[str, Any]) -> str:
    """A results file's environment as a few words: CPU, how many, Python, OS."""
    parts = [
        str(env["cpu_model"]) if env.get("cpu_model") else "",
        f"{env['cpu_count']} CPUs" if env.get("cpu_count") else "",
        str(env.get("python") or ""),
        str(env.get("os") or ""),
    ]
    return ", ".join(p for p in parts if p)


def provenance(measured_at: str | None, origin: str, machine: str) -> str:
    """The one phrase every stored figure carries: when, on what, from where.

    Figures from another machine differ from what ``layercake tour`` measures here (it
    measures live); saying where each came from is what makes the two comparable.
    """
    when = f"measured {measured_at}" if measured_at else "measured at an unrecorded time"
    where = f" on {machine}" if machine else " on an unrecorded machine"
    return f"{when}{where}" + (f" ({origin})" if origin else "")


def _costs(data: dict[str, Any], origin: str) -> tuple[dict[str, Cost], str | None]:
    rows = data.get("in_process") or data.get("inprocess") or []
    if not rows and str(data.get("kind", "")).replace("-", "_") in ("in_process", "inprocess"):
        rows = data.get("results") or []
    if isinstance(rows, dict):
        rows = rows.get("results") or [dict(v, layer=k) for k, v in rows.items() if isinstance(v, dict)]
    when = _when(data)
    costs: dict[str, Cost] = {}
    preferred = ("json", "/json", "plaintext", "/plaintext")
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or "layer" not in row:
            continue
        endpoint = str(row.get("endpoint") or row.get("path") or "")
        counters: dict[str, Any] = row["counters"] if isinstance(row.get("counters"), dict) else row
        us = _number(row.get("us_per_request", row.get("us")))
        calls = _number(counters.get("calls"))
        lines = _number(counters.get("lines"))
        packages = counters.get("by_package") or counters.get("packages") or {}
        by_package = {
            str(pkg): {k: int(v) for k, v in n.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            for pkg, n in (packages.items() if isinstance(packages, dict) else ())
            if isinstance(n, dict)
        }
        cost = Cost(
            str(row["layer"]),
            endpoint.lstrip("/") or "?",
            us,
            int(calls) if calls is not None else None,
            int(lines) if lines is not None else None,
            by_package,
            when,
            origin,
            machine_of(_environment(data)),
        )
        current = costs.get(cost.layer)
        rank = preferred.index(endpoint) if endpoint in preferred else len(preferred)
        if current is None or rank < (preferred.index(current.endpoint) if current.endpoint in preferred else 99):
            costs[cost.layer] = cost
    return costs, when


def _throughput(data: dict[str, Any], origin: str) -> tuple[list[Throughput], str | None]:
    if data.get("kind", "ladder") != "ladder":
        return [], None  # an experiment (e.g. /slow against concurrency) is not the ladder
    rows = data.get("results") or []
    when = _when(data)
    found: list[Throughput] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not (row.get("layer") or row.get("kind")):
            continue
        rps = _number(row.get("rps", row.get("requests_per_second")))
        if rps is None:
            continue
        summary: dict[str, Any] = row["rps"] if isinstance(row.get("rps"), dict) else {}
        found.append(
            Throughput(
                str(row.get("layer") or row.get("kind")),
                str(row.get("server", "?")),
                str(row.get("endpoint", "?")).lstrip("/"),
                row.get("concurrency") if isinstance(row.get("concurrency"), int) else None,
                rps,
                _number(summary.get("min")),
                _number(summary.get("max")),
                int(row.get("errors", 0) or 0) if isinstance(row.get("errors", 0), int) else 0,
                when,
                origin,
                machine_of(_environment(data)),
            )
        )
    return found, when


def _committed(path: Path) -> str | None:
    """When git last committed ``path`` ("committed 2026-11-29 02:37 UTC"), or None."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(path.parent), "log", "-1", "--format=%ct", "--", path.name],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        stamp = int(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, UTC).strftime("committed %Y-%m-%d %H:%M UTC")


def _server_pairs(data: dict[str, Any], path: Path) -> list[Throughput]:
    """``servers/bench_scratch.py``'s document: ``{"rps": {row: [req/s per round]}, "args": ...}``,
    each server serving its interface's bare layer on ``GET /plaintext``.  A row is a server, or
    ``server/options`` in the parser x loop matrix (``scratch-asgi/httptools+uvloop``).  The file
    records no time, so the commit that added it stands in (or its modification time), and says so."""
    rps, args = data.get("rps"), data.get("args") or {}
    if not isinstance(rps, dict) or not rps or not all(isinstance(v, list) for v in rps.values()):
        return []
    try:
        from servers.registry import SERVERS
    except ImportError:
        return []
    from datetime import UTC, datetime
    from statistics import median

    when = _committed(path) or datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime(
        "file dated %Y-%m-%d %H:%M UTC"
    )
    errors: dict[str, Any] = data["errors"] if isinstance(data.get("errors"), dict) else {}
    found = []
    for row, rounds in rps.items():
        values = [float(v) for v in rounds if isinstance(v, int | float) and not isinstance(v, bool)]
        server, _, variant = row.partition("/")
        spec = SERVERS.get(server) or SERVERS.get(server.split("-")[0])  # "uvicorn-h11" is uvicorn
        if not values or spec is None:
            continue
        found.append(
            Throughput(
                f"bare_{spec.interface}",
                server,
                "plaintext",
                args.get("connections") if isinstance(args.get("connections"), int) else None,
                median(values),
                min(values),
                max(values),
                int(errors.get(server, 0) or 0),
                when,
                _display(path),
                machine_of(_environment(data)),
                variant,
            )
        )
    return found


# --- Measuring now, on request ---


def measure_now(
    layers: list[str] | None = None, seconds_per_layer: float = 0.3, on_layer: Callable[[str], None] | None = None
) -> Figures:
    """In-process figures measured this moment with the benchmark's own counters.

    The counters (calls, distinct lines, by package) are deterministic, so a figure
    measured now is as good as a stored one; the µs are a quick median and labelled so.
    Each layer runs in its own subprocess, about a second each.
    """
    from datetime import UTC, datetime

    from layercake.bench.costs import quick_ladder
    from layercake.bench.environment import describe

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    origin = f"measured just now, in-process, {seconds_per_layer:g} s per layer"
    here = describe()
    figures = Figures(origin=origin, measured_at=when, environment=here)
    machine = "this machine: " + machine_of(here)

    def note(row: Any) -> None:
        figures.costs[row.layer] = Cost(
            row.layer, row.endpoint, row.us, row.calls, row.lines, row.by_package, when, origin, machine
        )
        if on_layer:
            on_layer(row.layer)

    from layers import LAYERS

    for name in layers if layers is not None else list(LAYERS):
        if not LAYERS[name].source.exists():
            continue  # not written yet: nothing to measure
        try:
            quick_ladder(seconds_per_layer, "json", [name], on_row=note)
        except LayercakeError as exc:
            figures.failures[name] = exc.message
    return figures


def figures_for(
    layers: list[str] | None = None,
    measure: bool = True,
    bench_dir: Path | None = None,
    on_layer: Callable[[str], None] | None = None,
) -> Figures:
    """The stored figures, with any layer they lack measured now when ``measure``."""
    from layers import LAYERS

    figures = load_figures(bench_dir)
    wanted = layers if layers is not None else list(LAYERS)
    lacking = [name for name in wanted if figures.cost(name) is None]
    if measure and lacking:
        fresh = measure_now(lacking, on_layer=on_layer)
        figures.costs.update(fresh.costs)
        figures.failures.update(fresh.failures)
        if fresh.costs and not figures.origin:
            figures.origin, figures.measured_at = fresh.origin, fresh.measured_at
    return figures
