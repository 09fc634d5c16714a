"""``cpu``: what scales CPU-bound work -- threads, an event loop, or processes?

The question
------------
A handler that computes for ~5 ms (``layers/shared/work.py``: pure-Python FNV-1a, no C call that
releases the GIL) served three ways:

- on **WSGI threads** -- ``bare_wsgi``'s experiment app on gunicorn's gthread worker, 1 process x 8
  threads.  Eight threads, one GIL: only one of them runs Python at a time, so they take turns;
- on **the event loop** -- ``bare_asgi``'s experiment app on uvicorn, 1 process.  The handler never
  awaits, so the loop runs one request at a time;
- on **two processes** -- the same two apps with ``--workers 2``: two interpreters, two GILs, two
  loops.

Expected: one process completes at most 1 / 5 ms = ~200 req/s however many requests are in flight
(threads and coroutines only add queueing: latency grows with concurrency); two processes approach
twice that on two idle cores.  Only processes scale CPU-bound Python (free-threaded CPython 3.13t
aside, which this project does not run).

Theory of operation
-------------------
The work per request is measured in the harness first (:func:`single_core_ms`: the same ``burn(n)``
in this process, median of five), which gives the one-core ceiling drawn on the chart.  Then wrk
sweeps :data:`CONCURRENCY` against each target.  Nothing is pinned in this experiment: two workers
need both CPUs, and pinning one-process targets to one CPU would hand them an advantage the others
lack -- wrk's own cost at ~100 req/s is a fraction of a percent of a core.  The machine is shared,
so the two-process figures are the ones other load on the box eats first: the load average at
start is in the environment line.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from layercake.bench.experiments import common
from layercake.bench.experiments.common import Check, LabConfig, Progress, Steps
from layercake.bench.report import Field
from layercake.errors import LayercakeError
from layers.shared.work import burn, expected

NAME = "cpu"
KIND = f"experiment:{NAME}"
WORK_N = 20_000
CONCURRENCY = [1, 2, 4, 8]
SMOKE_CONCURRENCY = [1, 2]
DURATION = 1.0  # seconds per run: wrk's resolution; the rounds give the spread
SMOKE_DURATION = 1.0
ROUNDS = 3
SMOKE_ROUNDS = 1
SMOKE_N = 2_000


@dataclass(frozen=True)
class Target:
    id: str
    server: str
    layer: str
    workers: int
    colour: str
    threads: int | None = None


TARGETS = (
    Target("WSGI threads: gthread 1 × 8", "gunicorn-gthread", "bare_wsgi", 1, "#ff7f0e", 8),
    Target("event loop: uvicorn 1 worker", "uvicorn", "bare_asgi", 1, "#d62728"),
    Target("processes: gthread 2 × 8", "gunicorn-gthread", "bare_wsgi", 2, "#2ca02c", 8),
    Target("processes: uvicorn 2 workers", "uvicorn", "bare_asgi", 2, "#1f77b4"),
)

SCHEMA = common.schema(
    KIND,
    (
        Field(
            "work",
            (dict,),
            (KIND,),
            "{n, single_core_ms, single_core_rps}: the handler's work timed in the harness (fastest of 15)",
        ),
        Field(
            "targets", (list,), (KIND,), "every target: id, server, layer, workers, threads, native_command or error"
        ),
        *(Field(path, types, (KIND,), meaning) for path, types, meaning in common.SWEEP_FIELDS),
        Field(
            "points[].connections_by_worker",
            (list,),
            (KIND,),
            "multi-process targets: per round, the load's connections each worker held halfway through, most first",
            optional=True,
        ),
    ),
)


def validate(doc: Any) -> list[str]:
    return common.validate(doc, SCHEMA)


def single_core_ms(n: int, rounds: int = 15) -> float:
    """Milliseconds ``burn(n)`` takes in this process: the fastest of ``rounds``.

    The fastest, as ``timeit`` advises: on a shared machine every slower run is someone else's work
    added to ours, never less work.
    """
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        burn(n)
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def plan(config: LabConfig) -> list[Target]:
    targets = list(TARGETS)
    if config.servers:
        targets = [t for t in targets if t.server in config.servers]
        if not targets:
            raise LayercakeError(f"--experiment {NAME} runs on gunicorn-gthread and uvicorn", 2)
    return targets[:2] if config.smoke else targets


def run(config: LabConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    targets = plan(config)
    sweep = config.concurrency or (SMOKE_CONCURRENCY if config.smoke else CONCURRENCY)
    duration = config.duration or (SMOKE_DURATION if config.smoke else DURATION)
    rounds = config.rounds or (SMOKE_ROUNDS if config.smoke else ROUNDS)
    n = SMOKE_N if config.smoke else WORK_N
    path = f"/cpu?n={n}"
    doc = common.envelope(
        NAME,
        command,
        {"concurrency": sweep, "duration_s": duration, "rounds": rounds, "path": path, "smoke": config.smoke},
    )
    doc["environment"]["pinning"] = {"server_cpu": None, "loadgen_cpu": None}
    doc["notes"].append(
        "not pinned: two worker processes need both CPUs (wrk's share at ~100 req/s is negligible); every target "
        f"is up for the whole run and the cells are interleaved over {rounds} rounds (medians shown)"
    )
    work_ms = single_core_ms(n)
    doc["work"] = {"n": n, "single_core_ms": round(work_ms, 3), "single_core_rps": round(1000 / work_ms, 1)}
    doc["targets"], doc["runs"] = [], []
    checks = [Check("/plaintext", body=b"Hello, World!"), Check(path, json=expected(n))]
    steps = Steps(len(targets) * (1 + len(sweep) * rounds), progress)
    failed: dict[str, str] = {}
    t0 = time.monotonic()
    with ExitStack() as stack, common.interruptible(doc, t0):
        live: dict[str, tuple[str, str]] = {}
        pgids: dict[str, int] = {}
        for target in targets:
            tdoc: dict[str, Any] = {
                "id": target.id,
                "server": target.server,
                "layer": target.layer,
                "workers": target.workers,
                "threads": target.threads,
            }
            doc["targets"].append(tdoc)
            steps.note(f"starting and verifying {target.id}")
            flags: dict[str, Any] = {"workers": target.workers}
            if target.threads:
                flags["threads"] = target.threads
            try:
                app = f"layers.{target.layer}.experiments:app"
                srv = stack.enter_context(common.start(target.server, target.layer, app, checks, **flags))
                tdoc["native_command"] = srv.native_command
                # Every worker process answers some before measuring (imports, first-call paths).
                common.load(srv.url, path, max(sweep), 1, None, config.generator)
            except LayercakeError as exc:
                failed[target.id] = exc.message.splitlines()[0]
            else:
                live[target.id] = (srv.url, path)
                if target.workers > 1:
                    pgids[target.id] = srv.pid
            steps.advance()
        common.sweep(live, sweep, rounds, duration, None, config.generator, steps, doc["runs"], failed, workers=pgids)
    for tdoc in doc["targets"]:
        if tdoc["id"] in failed:
            tdoc["error"] = failed[tdoc["id"]]
            doc["notes"].append(f"{tdoc['id']} not measured further: {tdoc['error']}")
    doc["points"] = common.summarise(doc["runs"])
    return doc


# --- output ---------------------------------------------------------------------------------------------------------------


def _grid(doc: dict[str, Any]) -> tuple[list[str], list[int], dict[tuple[str, int], dict[str, Any]]]:
    targets = [t["id"] for t in doc["targets"] if any(p["target"] == t["id"] for p in doc["points"])]
    sweep = sorted({p["concurrency"] for p in doc["points"]})
    return targets, sweep, {(p["target"], p["concurrency"]): p for p in doc["points"]}


def table(doc: dict[str, Any]) -> Table:
    targets, sweep, cells = _grid(doc)
    w = doc["work"]
    t = Table(
        title=f"cpu: GET /cpu ({w['single_core_ms']:.1f} ms of pure Python each; one core: "
        f"{w['single_core_rps']:,.0f} req/s) -- req/s and p50",
        title_justify="left",
    )
    t.add_column("target")
    for c in sweep:
        t.add_column(f"c={c}", justify="right")
    for target in targets:
        row = []
        for c in sweep:
            p = cells.get((target, c))
            row.append(f"{p['rps']:,.0f}/s {common.ms(p['p50_ms'])}" + (" ⚠" if p["errors"] else "") if p else "–")
        t.add_row(target, *row)
    return t


def markdown(doc: dict[str, Any]) -> str:
    targets, sweep, cells = _grid(doc)
    w = doc["work"]
    out = common.md_header(
        doc,
        "Experiment: CPU-bound work on threads, on the event loop, on processes",
        f"Each request computes `burn({w['n']})` ({w['single_core_ms']:.1f} ms of pure Python in the harness, so "
        f"one core finishes at most {w['single_core_rps']:,.0f} a second). What adds throughput: 8 threads, an "
        "event loop, or a second process?",
    )
    out += ["![throughput by requests in flight](cpu.png)", ""]
    out += [
        f"req/s (p50 / p99), each the median of {doc['settings']['rounds']} interleaved runs of "
        f"{common.run_lengths(doc)} (every run, with its round, is in the JSON):",
        "",
        "| target | " + " | ".join(f"c={c}" for c in sweep) + " |",
        "|---|" + "--:|" * len(sweep),
    ]
    for target in targets:
        row = []
        for c in sweep:
            p = cells.get((target, c))
            row.append(f"{p['rps']:,.0f} ({common.ms(p['p50_ms'])} / {common.ms(p['p99_ms'])})" if p else "–")
        out.append(f"| {target} | " + " | ".join(row) + " |")
    spread = [
        (t, c, cells[(t, c)]["connections_by_worker"])
        for t in targets
        for c in sweep
        if (t, c) in cells and cells[(t, c)].get("connections_by_worker")
    ]
    if spread:
        out += [
            "",
            "How wrk's connections were spread over the worker processes: new sockets each worker held halfway through "
            "(a keep-alive connection stays with the worker that accepted it):",
            "",
            "| target | c | connections per worker, each round |",
            "|---|--:|---|",
        ]
        out += [
            f"| {t} | {c} | " + "; ".join(" + ".join(map(str, r)) or "–" for r in rounds_) + " |"
            for t, c, rounds_ in spread
        ]
    out += [
        "",
        "How to read it: a thread pool and an event loop are both one process, so both stay near the one-core "
        "line whatever the concurrency (more in flight only means a longer queue); only a second worker process "
        "adds a second GIL -- for the requests that reach it: wrk's keep-alive connections are accepted once, and a "
        "worker that accepts both of two connections serves both while the other idles. On a shared machine the "
        "second core is also the one other work takes first.",
        "",
        "## Servers",
        "",
    ]
    for t in doc["targets"]:
        out.append(f"- {t['id']}: `{t.get('native_command') or t.get('error', '?')}`")
    return "\n".join(out) + "\n"


def charts(doc: dict[str, Any], directory: Any) -> list[Any]:
    plt = common.pyplot()
    targets, sweep, cells = _grid(doc)
    if not targets:
        return []
    colours = {t.id: t.colour for t in TARGETS}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for target in targets:
        series = [(c, cells[(target, c)]) for c in sweep if (target, c) in cells]
        xs = [c for c, _ in series]
        ax1.plot(xs, [p["rps"] for _, p in series], marker="o", label=target, color=colours.get(target))
        ax2.plot(xs, [p["p50_ms"] for _, p in series], marker="o", label=target, color=colours.get(target))
    one = doc["work"]["single_core_rps"]
    ax1.axhline(one, color="grey", linestyle="--", linewidth=1)
    ax1.axhline(2 * one, color="grey", linestyle=":", linewidth=1)
    ax1.text(sweep[0], one * 1.02, "one core (measured in the harness)", fontsize=8, color="grey")
    ax1.text(sweep[0], 2 * one * 1.02, "two cores", fontsize=8, color="grey")
    ax1.set_ylim(0, max([2.3 * one] + [p["rps"] * 1.1 for p in doc["points"]]))
    ax1.set_ylabel("requests/s")
    ax1.set_title("Throughput: one process cannot pass one core")
    ax2.set_ylabel("p50 latency, ms")
    ax2.set_title("Latency: past the cores, more in flight only queues")
    for ax in (ax1, ax2):
        ax.set_xlabel("requests in flight")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sweep, [str(c) for c in sweep])
    ax1.legend(fontsize=8, loc="upper right")  # the "one core" / "two cores" labels sit on the left
    ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"CPU-bound handler ({doc['work']['single_core_ms']:.1f} ms of pure Python per request)")
    return [common.save_figure(fig, doc, directory / "cpu.png")]
