"""Results out: the JSON schema, the terminal table, the markdown report, the charts, and --compare.

Theory of operation
-------------------
Everything ``layercake bench`` measures becomes one JSON *results document*; every
other output is rendered from that document alone, so a table, a report or a chart
can be regenerated from a committed JSON file without measuring again, and a figure
in the docs can always be traced to the file and the command that produced it.

The schema is data (:data:`SCHEMA`): one row per field with the kinds of document it
appears in, its type and what it means.  :func:`validate` checks a document against
it and :func:`schema_markdown` renders it for ``docs/bench.md`` (a test keeps the two
equal).  Three kinds of document share the envelope (``schema``, ``kind``,
``command``, ``measured_at``, ``environment``, ``settings``):

- ``ladder`` -- the socket benchmark (``targets``, ``runs``, ``results``);
- ``experiment:slow`` -- the sync-vs-async experiment, the same fields over a
  concurrency sweep of ``/slow?ms=50``;
- ``in_process`` -- µs and work counters per layer and endpoint (``in_process``).

:func:`compare` lines up two documents of the same kind cell by cell and reports the
change of the medians; it warns when the environments differ, because a ratio across
machines is not a measurement of the code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from layercake.bench.costs import PACKAGES
from layercake.bench.stats import human_rate, human_us, percent_change

SCHEMA_ID = "layercake.bench/1"
KINDS = ("ladder", "experiment:slow", "in_process")
_SOCKET = ("ladder", "experiment:slow")
_ALL = KINDS


@dataclass(frozen=True)
class Field:
    path: str  # dotted; "[]" marks the items of a list
    types: tuple[type, ...]
    kinds: tuple[str, ...]
    meaning: str
    optional: bool = False


_NUM = (int, float)
_SPREAD = "{median, min, max, n} over the repeated runs"

SCHEMA: tuple[Field, ...] = (
    Field("schema", (str,), _ALL, f'always "{SCHEMA_ID}"'),
    Field("kind", (str,), _ALL, "ladder | experiment:slow | in_process"),
    Field("command", (str,), _ALL, "the command line that produced the document"),
    Field("measured_at", (str,), _ALL, "UTC start time, ISO 8601"),
    Field("elapsed_s", _NUM, _ALL, "wall-clock seconds the measurement took"),
    Field("environment", (dict,), _ALL, "the machine, Python and packages (layercake/bench/environment.py)"),
    Field("environment.cpu_model", (str,), _ALL, "from /proc/cpuinfo"),
    Field("environment.cpu_count", (int,), _ALL, "CPUs the OS has"),
    Field("environment.usable_cpus", (list,), _ALL, "CPUs this process may run on"),
    Field("environment.loadavg_at_start", (list,), _ALL, "1, 5, 15-minute load averages: a busy machine shows here"),
    Field("environment.python", (str,), _ALL, 'e.g. "CPython 3.11.7"'),
    Field("environment.packages", (dict,), _ALL, "package -> version (null: not installed)"),
    Field("environment.wrk", (str, type(None)), _ALL, "wrk's version line, null when not installed"),
    Field("environment.pinning", (dict,), _SOCKET, "{server_cpu, loadgen_cpu}; nulls: not pinned"),
    Field(
        "environment.generator",
        (dict,),
        _SOCKET,
        '{kind: "wrk" | "builtin", why, threads, ceiling_rps (builtin only: its own rate against the floor)}',
    ),
    Field("settings", (dict,), _ALL, "the options of the run (endpoints, concurrency, duration_s, repeat, ...)"),
    Field("targets", (list,), _SOCKET, "every target started, loaded or not"),
    Field("targets[].id", (str,), _SOCKET, '"server/layer", or "floor" / "node"'),
    Field("targets[].server", (str,), _SOCKET, "registry name, floor or node"),
    Field("targets[].layer", (str,), _SOCKET, "layer name, floor or node"),
    Field("targets[].kind", (str,), _SOCKET, "layer | floor | peer"),
    Field("targets[].flags", (dict,), _SOCKET, "ServerOptions given to the server"),
    Field("targets[].native_command", (str,), _SOCKET, "the command a user would type for this server", optional=True),
    Field(
        "targets[].verification",
        (dict,),
        _SOCKET,
        "{method, passed, total, ok, failures, blocking}: blocking problems kept the target out of the run",
        optional=True,
    ),
    Field(
        "targets[].error", (str,), _SOCKET, "why the target did not start, or stopped answering mid-run", optional=True
    ),
    Field("runs", (list,), _SOCKET, "every load, in the order run"),
    Field("runs[].target", (str,), _SOCKET, "a targets[].id"),
    Field("runs[].endpoint", (str,), _SOCKET, "plaintext | json | item | create | slow"),
    Field("runs[].concurrency", (int,), _SOCKET, "open connections"),
    Field("runs[].round", (int,), _SOCKET, "0-based repetition; rounds alternate direction"),
    Field("runs[].requests", (int,), _SOCKET, "responses completed"),
    Field("runs[].duration_s", _NUM, _SOCKET, "measured duration of the load"),
    Field("runs[].rps", _NUM, _SOCKET, "requests / duration_s"),
    Field(
        "runs[].errors",
        (dict,),
        _SOCKET,
        "{connect, read, write, timeout} socket errors and status (responses with status >= 400)",
    ),
    Field("runs[].latency_us", (dict,), _SOCKET, "min, max, mean, stdev, p50, p75, p90, p99, p99.9 in µs"),
    Field("results", (list,), _SOCKET, "one row per target x endpoint x concurrency"),
    Field("results[].target", (str,), _SOCKET, "a targets[].id"),
    Field("results[].server", (str,), _SOCKET, "as in targets"),
    Field("results[].layer", (str,), _SOCKET, "as in targets"),
    Field("results[].endpoint", (str,), _SOCKET, "as in runs"),
    Field("results[].concurrency", (int,), _SOCKET, "as in runs"),
    Field("results[].rps", (dict,), _SOCKET, f"requests per second, {_SPREAD}"),
    Field("results[].latency_us", (dict,), _SOCKET, f"p50, p90, p99, each {_SPREAD}"),
    Field("results[].errors", (int,), _SOCKET, "socket_errors + non_2xx over all runs"),
    Field("results[].flagged", (bool,), _SOCKET, "true when there was any error: do not trust the row"),
    Field(
        "results[].ratio_to_bare",
        (float, int, type(None)),
        _SOCKET,
        "median rps / the bare layer's of the same interface on the same server (this run)",
    ),
    Field(
        "results[].ratio_to_baseline",
        (float, int, type(None)),
        _SOCKET,
        "median rps / the baseline target's (settings.baseline, default the floor)",
    ),
    Field("in_process", (list,), ("in_process",), "one row per layer x endpoint"),
    Field("failures", (list,), ("in_process",), "layers that could not be measured, with the reason"),
    Field("in_process[].layer", (str,), ("in_process",), 'layer name; "LAYER@asgi" / "LAYER@wsgi" through a bridge'),
    Field("in_process[].bridge", (str, type(None)), ("in_process",), '"wsgi->asgi" | "asgi->wsgi" | null'),
    Field(
        "in_process[].exact",
        (bool,),
        ("in_process",),
        "true: two runs give identical calls, C calls and lines; false (bridges, and requests that hop threads "
        "like Django on ASGI): within a few percent",
    ),
    Field("in_process[].interface", (str,), ("in_process",), "wsgi | asgi: the interface the app was driven as"),
    Field("in_process[].endpoint", (str,), ("in_process",), "plaintext | json | item | create"),
    Field(
        "in_process[].us_per_request", (dict,), ("in_process",), "µs per request, {median, min, max, n} over batches"
    ),
    Field(
        "in_process[].counters",
        (dict,),
        ("in_process",),
        "per request, deterministic: calls, c_calls, lines (distinct), line_events, peak_bytes, net_bytes, "
        "thread_hops (work handed to another thread), by_package: {package: {calls, c_calls, lines, line_events}}",
    ),
    Field(
        "in_process[].ratio_to_bare",
        (dict,),
        ("in_process",),
        "{us, calls} divided by the bare layer of the driven interface, same endpoint; native_us (bridged rows): "
        "µs divided by the same layer's without the bridge",
    ),
)


def _values(doc: Any, parts: list[str]) -> list[tuple[str, Any]]:
    """The values at a dotted path with [] fan-out, each with a readable location."""
    found = [("", doc)]
    for part in parts:
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        nxt = []
        for where, value in found:
            if not isinstance(value, dict) or key not in value:
                nxt.append((f"{where}.{key}".lstrip("."), _MISSING))
                continue
            item = value[key]
            if many:
                nxt.extend((f"{where}.{key}[{i}]".lstrip("."), x) for i, x in enumerate(item or []))
            else:
                nxt.append((f"{where}.{key}".lstrip("."), item))
        found = nxt
    return found


_MISSING = object()


def validate(doc: Any) -> list[str]:
    """Problems with a results document (empty: it follows :data:`SCHEMA`)."""
    if not isinstance(doc, dict):
        return ["a results document is a JSON object"]
    problems = []
    if doc.get("schema") != SCHEMA_ID:
        problems.append(f"schema is {doc.get('schema')!r}, expected {SCHEMA_ID!r}")
    kind = doc.get("kind")
    if kind not in KINDS:
        return [*problems, f"kind is {kind!r}, expected one of {', '.join(KINDS)}"]
    for f in SCHEMA:
        if kind not in f.kinds:
            continue
        for where, value in _values(doc, f.path.split(".")):
            if value is _MISSING:
                if not f.optional:
                    problems.append(f"{where}: missing ({f.meaning})")
            elif not isinstance(value, f.types) or isinstance(value, bool) and bool not in f.types:
                problems.append(f"{where}: {type(value).__name__}, expected {' or '.join(t.__name__ for t in f.types)}")
    return problems


def schema_markdown() -> str:
    """The schema as a markdown table, for docs/bench.md."""
    names = {
        str: "string",
        int: "integer",
        float: "number",
        dict: "object",
        list: "array",
        bool: "boolean",
        type(None): "null",
    }
    lines = ["| field | type | in | meaning |", "|---|---|---|---|"]
    for f in SCHEMA:
        types = " \\| ".join(dict.fromkeys(names[t] for t in f.types))
        kinds = "all" if f.kinds == _ALL else ", ".join(f.kinds)
        meaning = f.meaning.replace("|", "\\|")
        lines.append(f"| `{f.path}`{' (optional)' if f.optional else ''} | {types} | {kinds} | {meaning} |")
    return "\n".join(lines) + "\n"


def load(path: str | Path) -> dict[str, Any]:
    from layercake.errors import LayercakeError

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayercakeError(f"cannot read results file {path}: {exc}") from None
    problems = validate(doc)
    if problems:
        raise LayercakeError(f"{path} is not a layercake results document: {'; '.join(problems[:5])}")
    return doc


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return out


# --- text -------------------------------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _spread(s: dict[str, Any], fmt: Any = human_rate) -> tuple[str, str]:
    return fmt(s["median"]), (f"{fmt(s['min'])}–{fmt(s['max'])}" if s["n"] > 1 else "")


def generator_line(doc: dict[str, Any]) -> str:
    g = doc["environment"].get("generator", {})
    pin = doc["environment"].get("pinning", {})
    where = (
        f"server on CPU {pin['server_cpu']}, load generator on CPU {pin['loadgen_cpu']}"
        if pin.get("server_cpu") is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    if g.get("kind") == "builtin":
        ceiling = f"{human_rate(g['ceiling_rps'])} req/s" if g.get("ceiling_rps") else "not measured (no floor)"
        return (
            f"Load generator: the BUILT-IN Python generator ({g.get('why', 'wrk is not installed')}) -- its "
            f"ceiling on this "
            f"machine is {ceiling} (its own rate against the floor); results near it measure the generator, "
            f"not the server. {where}."
        )
    return f"Load generator: {doc['environment'].get('wrk') or 'wrk'}, 1 thread; {where}."


def environment_line(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    load_avg = ", ".join(str(x) for x in env.get("loadavg_at_start", []))
    return (
        f"{env.get('cpu_model')} · {env.get('cpu_count')} CPUs · {env.get('python')} · "
        f"load average at start {load_avg} · measured {doc['measured_at']} in {doc.get('elapsed_s')} s"
    )


def ladder_table(doc: dict[str, Any]) -> Table:
    settings = doc["settings"]
    table = Table(
        title=f"layercake bench: {doc['kind']} (median of {settings['repeat']} × {settings['duration_s']} s,"
        f" baseline {settings.get('baseline') or '-'})"
    )
    for name, justify in (
        ("target", "left"),
        ("endpoint", "left"),
        ("c", "right"),
        ("req/s", "right"),
        ("min–max", "right"),
        ("p50", "right"),
        ("p99", "right"),
        ("× bare", "right"),
        ("× baseline", "right"),
        ("errors", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]  # justify is one of rich's literals, from the column table
    for r in doc["results"]:
        median, spread = _spread(r["rps"])
        errors = f"[bold red]{r['errors']} ⚠[/]" if r["flagged"] else "0"
        table.add_row(
            r["target"],
            r["endpoint"],
            str(r["concurrency"]),
            median,
            spread,
            human_us(r["latency_us"]["p50"]["median"]),
            human_us(r["latency_us"]["p99"]["median"]),
            _ratio(r["ratio_to_bare"]),
            _ratio(r["ratio_to_baseline"]),
            errors,
        )
    return table


def _glance_cells(doc: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Targets × endpoints at the ladder's concurrency: "median req/s (× bare)", "⚠" when flagged."""
    results = doc["results"]
    concurrencies = sorted({r["concurrency"] for r in results})
    if not concurrencies:  # nothing measured (an interrupted run, every target failed to start)
        return [], [], {}
    c = 64 if 64 in concurrencies else concurrencies[-1]
    targets = list(dict.fromkeys(r["target"] for r in results))
    endpoints = list(dict.fromkeys(r["endpoint"] for r in results))
    cells = {}
    for r in results:
        if r["concurrency"] == c:
            bare = f" ({r['ratio_to_bare']:.2f}×)" if r["ratio_to_bare"] not in (None, 1.0) else ""
            cells[(r["target"], r["endpoint"])] = human_rate(r["rps"]["median"]) + bare + (" ⚠" if r["flagged"] else "")
    return targets, endpoints, cells


def glance_table(doc: dict[str, Any]) -> Table:
    """The ladder at a glance: one row per target, one column per endpoint."""
    targets, endpoints, cells = _glance_cells(doc)
    table = Table(title="req/s, median (× the bare layer on the same server)")
    table.add_column("target")
    for e in endpoints:
        table.add_column(e, justify="right")
    for t in targets:
        table.add_row(t, *(cells.get((t, e), "–") for e in endpoints))
    return table


def inprocess_table(doc: dict[str, Any]) -> Table:
    table = Table(
        title="layercake bench --in-process: per request, no socket (calls and lines are deterministic; "
        "≈: through a bridge, within a few percent)"
    )
    for name in (
        "layer",
        "endpoint",
        "µs",
        "× bare",
        "Python calls",
        "C calls",
        "lines",
        "thread hops",
        "peak alloc",
        "calls by package",
    ):
        table.add_column(name, justify="left" if name in ("layer", "endpoint", "calls by package") else "right")
    for r in doc["in_process"]:
        c = r["counters"]
        packages = ", ".join(f"{p} {n['calls']}" for p, n in c["by_package"].items() if n["calls"])
        approx = "" if r.get("exact", True) else "≈"
        native = r["ratio_to_bare"].get("native_us")
        table.add_row(
            r["layer"],
            r["endpoint"],
            f"{r['us_per_request']['median']:.1f}",
            _ratio(r["ratio_to_bare"]["us"]) + (f" ({native:.1f}× native)" if native else ""),
            approx + str(c["calls"]),
            approx + str(c["c_calls"]),
            approx + str(c["lines"]),
            str(c.get("thread_hops", "-")),
            f"{c['peak_bytes'] / 1024:.1f} KiB",
            packages,
        )
    return table


def verification_notes(doc: dict[str, Any]) -> list[str]:
    notes = []
    for t in doc.get("targets", []):
        v = t.get("verification")
        if t.get("error"):
            notes.append(f"{t['id']}: {t['error'].splitlines()[0]}")
        elif v and not v["ok"]:
            notes.append(f"{t['id']}: NOT LOADED, failed on a benchmarked route: {'; '.join(v['blocking'])}")
        elif v and v["failures"]:
            notes.append(
                f"{t['id']}: contract {v['passed']}/{v['total']} (outside the benchmarked routes: "
                f"{'; '.join(f.split(':')[0] for f in v['failures'])})"
            )
    return notes


def markdown(doc: dict[str, Any]) -> str:
    """The document as a markdown report (tables, environment, how it was produced)."""
    out = [
        f"# layercake bench: {doc['kind']}",
        "",
        f"Produced by `{doc['command']}`.",
        "",
        environment_line(doc) + ".",
        "",
    ]
    if doc["kind"] == "in_process":
        out += [
            "Per request, in-process (no socket, no server): median µs over batches; Python calls, C calls and "
            "distinct source lines executed are deterministic counters (layercake/bench/costs.py).",
            "",
            f"Django layers' middleware: {doc['settings'].get('django_middleware', 'none')} "
            "(`layercake --django-middleware`).",
            "",
            "| layer | endpoint | µs | × bare | Python calls | C calls | lines | thread hops | peak alloc "
            "| calls by package |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for r in doc["in_process"]:
            c = r["counters"]
            packages = ", ".join(f"{p} {n['calls']}" for p, n in c["by_package"].items() if n["calls"])
            approx = "" if r.get("exact", True) else "≈"
            out.append(
                f"| {r['layer']} | {r['endpoint']} | {r['us_per_request']['median']:.1f} | "
                f"{_ratio(r['ratio_to_bare']['us'])} | {approx}{c['calls']} | {approx}{c['c_calls']} | "
                f"{approx}{c['lines']} | {c.get('thread_hops', '-')} | "
                f"{c['peak_bytes'] / 1024:.1f} KiB | {packages} |"
            )
        if doc.get("failures"):
            out += ["", "## Not measured", ""] + [f"- {f}" for f in doc["failures"]]
        return "\n".join(out) + "\n"
    settings = doc["settings"]
    out += [
        generator_line(doc),
        "",
        f"Median of {settings['repeat']} interleaved runs of {settings['duration_s']} s each, min–max beside it; "
        "ratios are against the bare layer on the same server"
        + (
            f" and against `{settings['baseline']}`"
            if settings.get("baseline")
            else " (no baseline target in this run)"
        )
        + ", measured in this run.",
        "",
    ]
    if settings.get("expected"):
        out += [f"Expected: {settings['expected']['note']}.", ""]
    if doc["kind"] == "ladder":
        targets, endpoints, cells = _glance_cells(doc)
        out += [
            "## At a glance",
            "",
            "req/s, median (× the bare layer on the same server):",
            "",
            "| target | " + " | ".join(endpoints) + " |",
            "|---|" + "--:|" * len(endpoints),
        ]
        out += [f"| {t} | " + " | ".join(cells.get((t, e), "–") for e in endpoints) + " |" for t in targets]
        out += ["", "## Every cell", ""]
    out += [
        "| target | endpoint | c | req/s | min–max | p50 | p99 | × bare | × baseline | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in doc["results"]:
        median, spread = _spread(r["rps"])
        errors = f"**{r['errors']} ⚠**" if r["flagged"] else "0"
        out.append(
            f"| {r['target']} | {r['endpoint']} | {r['concurrency']} | {median} | {spread} | "
            f"{human_us(r['latency_us']['p50']['median'])} | {human_us(r['latency_us']['p99']['median'])} | "
            f"{_ratio(r['ratio_to_bare'])} | {_ratio(r['ratio_to_baseline'])} | {errors} |"
        )
    out += ["", "## Servers", ""]
    for t in doc["targets"]:
        out.append(f"- `{t['id']}`: `{t.get('native_command', t.get('error', '?'))}`")
    notes = verification_notes(doc)
    if notes:
        out += ["", "## Verification", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


# --- compare ----------------------------------------------------------------------------------------------------------


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[Table, list[str]]:
    """The change from ``a`` to ``b``, cell by cell, and warnings about what differs besides the code."""
    from layercake.errors import LayercakeError

    if (a["kind"] == "in_process") != (b["kind"] == "in_process"):
        raise LayercakeError(f"cannot compare a {a['kind']} document with a {b['kind']} one")
    warnings = []
    for key in ("cpu_model", "cpu_count", "python"):
        if a["environment"].get(key) != b["environment"].get(key):
            warnings.append(
                f"different {key}: {a['environment'].get(key)} vs {b['environment'].get(key)} -- "
                "changes are not the code's alone"
            )
    changed = {
        k: (a["environment"]["packages"].get(k), v)
        for k, v in b["environment"]["packages"].items()
        if a["environment"]["packages"].get(k) != v
    }
    if changed:
        warnings.append("package versions differ: " + ", ".join(f"{k} {x}→{y}" for k, (x, y) in changed.items()))
    table = Table(title=f"change from {a['measured_at']} to {b['measured_at']}")
    if a["kind"] == "in_process":
        for name in ("layer", "endpoint", "µs A", "µs B", "Δ µs", "calls A", "calls B", "Δ calls"):
            table.add_column(name, justify="left" if name in ("layer", "endpoint") else "right")
        old = {(r["layer"], r["endpoint"]): r for r in a["in_process"]}
        for r in b["in_process"]:
            o = old.get((r["layer"], r["endpoint"]))
            if o is None:
                continue
            ua, ub = o["us_per_request"]["median"], r["us_per_request"]["median"]
            ca, cb = o["counters"]["calls"], r["counters"]["calls"]
            table.add_row(
                r["layer"], r["endpoint"], f"{ua:.1f}", f"{ub:.1f}", _pct(ub, ua), str(ca), str(cb), f"{cb - ca:+d}"
            )
        return table, warnings
    for name in ("target", "endpoint", "c", "req/s A", "req/s B", "Δ", "overlap"):
        table.add_column(name, justify="left" if name in ("target", "endpoint") else "right")
    before = {(r["target"], r["endpoint"], r["concurrency"]): r for r in a["results"]}
    for r in b["results"]:
        o = before.get((r["target"], r["endpoint"], r["concurrency"]))
        if o is None:
            continue
        ra, rb = o["rps"], r["rps"]
        # Ranges that overlap: the change is within the noise of these runs.
        overlap = "within noise" if ra["min"] <= rb["max"] and rb["min"] <= ra["max"] else ""
        table.add_row(
            r["target"],
            r["endpoint"],
            str(r["concurrency"]),
            human_rate(ra["median"]),
            human_rate(rb["median"]),
            _pct(rb["median"], ra["median"]),
            overlap,
        )
    return table, warnings


def _pct(new: float, old: float) -> str:
    change = percent_change(new, old)
    return "" if change is None else f"{change:+.1f}%"


#: One colour per package, the same in every chart (tab10 has ten; we have eleven packages).
PACKAGE_COLOURS = {
    "layer": "#1f77b4",
    "server": "#ff7f0e",
    "driver": "#c7c7c7",
    "starlette": "#d62728",
    "fastapi": "#9467bd",
    "pydantic": "#8c564b",
    "werkzeug": "#e377c2",
    "flask": "#2ca02c",
    "django": "#0c4b33",  # Django's own green
    "asgiref": "#ff9896",
    "a2wsgi": "#bcbd22",
    "stdlib": "#17becf",
    "other": "#7f7f7f",
}

# --- charts -----------------------------------------------------------------------------------------------------------


def charts(doc: dict[str, Any], directory: str | Path) -> list[Path]:
    """PNG charts for the document, written into ``directory``; the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stamp = f"{doc['environment'].get('cpu_model', '')} · {doc['environment'].get('python', '')} · {doc['measured_at']}"

    def save(fig: Any, name: str) -> None:
        fig.text(0.01, 0.01, stamp, fontsize=7, color="grey")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if doc["kind"] == "in_process":
        rows = doc["in_process"]
        endpoints = list(dict.fromkeys(r["endpoint"] for r in rows))
        layers = list(dict.fromkeys(r["layer"] for r in rows))
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / max(1, len(endpoints))
        for i, e in enumerate(endpoints):
            values = [
                next((r["us_per_request"]["median"] for r in rows if r["layer"] == la and r["endpoint"] == e), 0)
                for la in layers
            ]
            ax.bar([x + i * width for x in range(len(layers))], values, width, label=e)
        ax.set_xticks(
            [x + width * (len(endpoints) - 1) / 2 for x in range(len(layers))], layers, rotation=25, ha="right"
        )
        ax.set_ylabel("µs per request (median)")
        ax.set_title("In-process cost per request, by layer (no socket)")
        ax.legend()
        save(fig, "inprocess-us.png")
        endpoint = "json" if "json" in endpoints else endpoints[0]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        bottom = [0] * len(layers)
        for pkg in PACKAGES:
            values = []
            for la in layers:
                r = next((r for r in rows if r["layer"] == la and r["endpoint"] == endpoint), None)
                values.append(r["counters"]["by_package"].get(pkg, {}).get("calls", 0) if r else 0)
            if any(values):
                ax.bar(layers, values, bottom=bottom, label=pkg, color=PACKAGE_COLOURS[pkg])
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.tick_params(axis="x", labelrotation=25)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_ylabel("Python calls per request")
        ax.set_title(f"Python calls per request by package (GET {endpoint}, deterministic)")
        ax.legend(fontsize=8)
        save(fig, "inprocess-calls.png")
        return written

    results = doc["results"]
    concurrencies = sorted({r["concurrency"] for r in results})
    targets = list(dict.fromkeys(r["target"] for r in results))
    endpoints = list(dict.fromkeys(r["endpoint"] for r in results))
    if doc["kind"] == "ladder":
        c = 64 if 64 in concurrencies else concurrencies[-1]  # the ladder's own concurrency when swept
        fig, ax = plt.subplots(figsize=(10, 5))
        width = 0.8 / max(1, len(endpoints))
        for i, e in enumerate(endpoints):
            cells = {r["target"]: r for r in results if r["endpoint"] == e and r["concurrency"] == c}
            xs = [x + i * width for x, t in enumerate(targets) if t in cells]
            meds = [cells[t]["rps"]["median"] for t in targets if t in cells]
            err = [
                [cells[t]["rps"]["median"] - cells[t]["rps"]["min"] for t in targets if t in cells],
                [cells[t]["rps"]["max"] - cells[t]["rps"]["median"] for t in targets if t in cells],
            ]
            ax.bar(xs, meds, width, yerr=err, capsize=2, label=e)
        ax.set_xticks(
            [x + width * (len(endpoints) - 1) / 2 for x in range(len(targets))], targets, rotation=25, ha="right"
        )
        ax.set_ylabel("requests/s (median; bars: min–max)")
        ax.set_yscale("log")
        ax.set_title(f"The ladder: requests/s per layer, c={c}")
        ax.legend()
        save(fig, "ladder-rps.png")
        e = endpoints[0]
        fig, ax = plt.subplots(figsize=(10, 5))
        cells = {r["target"]: r for r in results if r["endpoint"] == e and r["concurrency"] == c}
        names = [t for t in targets if t in cells]
        for i, p in enumerate(("p50", "p90", "p99")):
            ax.bar(
                [x + i * 0.27 for x in range(len(names))],
                [cells[t]["latency_us"][p]["median"] / 1000 for t in names],
                0.27,
                label=p,
            )
        ax.set_xticks([x + 0.27 for x in range(len(names))], names, rotation=25, ha="right")
        ax.set_ylabel("latency, ms")
        ax.set_yscale("log")
        ax.set_title(f"Latency percentiles, {e}, c={c}")
        ax.legend()
        save(fig, "ladder-latency.png")
    if len(concurrencies) > 1:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for e in endpoints:
            for t in targets:
                series = sorted((r["concurrency"], r) for r in results if r["target"] == t and r["endpoint"] == e)
                if len(series) < 2:
                    continue
                name = t if len(endpoints) == 1 else f"{t} {e}"
                ax1.plot([c for c, _ in series], [r["rps"]["median"] for _, r in series], marker="o", label=name)
                ax2.plot(
                    [c for c, _ in series],
                    [r["latency_us"]["p99"]["median"] / 1000 for _, r in series],
                    marker="o",
                    label=name,
                )
        for ax, ylabel in ((ax1, "requests/s (median)"), (ax2, "p99 latency, ms")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent connections")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
        title = (
            "Sync vs async: GET /slow?ms=50 as concurrency rises"
            if doc["kind"] == "experiment:slow"
            else "Concurrency sweep"
        )
        fig.suptitle(title)
        save(fig, "slow-concurrency.png" if doc["kind"] == "experiment:slow" else "concurrency.png")
    return written
