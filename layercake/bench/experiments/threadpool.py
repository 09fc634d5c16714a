"""``threadpool``: where a ``def`` endpoint falls off a cliff, and the one line that moves it.

The question
------------
FastAPI (through Starlette) runs a plain ``def`` endpoint in anyio's worker threads, and every call
borrows a token of the *default thread limiter*: 40 tokens unless the app raises it.  So a ``def``
endpoint that blocks 50 ms serves 40 requests at a time, at most 40 / 50 ms = 800 req/s; the 41st
concurrent request waits for a token, and from there latency grows with every request in flight
while throughput stays flat.  Reports from users show p50 going from 2 ms at 39 in flight to 273 ms
at 45; this experiment measures the shape on this machine.

Theory of operation
-------------------
wrk sweeps the number of requests in flight (:data:`CONCURRENCY`: 1 .. 128, with 40 and 48 on
either side of the default) against each target, one target at a time, and records throughput and
p50/p99 per step:

- ``fastapi def (40 tokens)`` -- ``def`` + ``time.sleep(0.05)`` on uvicorn, anyio's default limiter;
- ``fastapi def (256 tokens)`` -- the same endpoint in ``app_raised``, whose lifespan startup sets
  ``anyio.to_thread.current_default_thread_limiter().total_tokens = 256`` (the fix; verified through
  ``GET /limiter`` before the sweep);
- ``fastapi async def`` -- ``await asyncio.sleep(0.05)``: no thread, no token, no cliff;
- ``gunicorn-gthread (8 threads)`` and ``scratch-wsgi (8 threads)`` -- the WSGI rungs: ``bare_wsgi``'s
  contract ``GET /slow?ms=50``, a thread per request in flight, so their ceiling is 8 / 50 ms = 160 req/s.

The expected ceiling of each target (threads / wait) is recorded beside the measurement, so the chart
can draw the theory under the points.  Server pinned to one CPU, wrk to the other.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from layercake.bench.experiments import common
from layercake.bench.experiments.common import Check, LabConfig, Progress, Steps
from layercake.bench.report import Field
from layercake.errors import LayercakeError

NAME = "threadpool"
KIND = f"experiment:{NAME}"
WAIT_MS = 50
ANYIO_DEFAULT_TOKENS = 40
RAISED_TOKENS = 256  # layers/fastapi/experiments.py RAISED_TOKENS, checked through GET /limiter
CONCURRENCY = [1, 8, 16, 32, 40, 48, 64, 128]
SMOKE_CONCURRENCY = [1, 4]
DURATION = 1.0  # seconds per run: wrk's resolution; the rounds give the spread
SMOKE_DURATION = 1.0
ROUNDS = 3
SMOKE_ROUNDS = 1


@dataclass(frozen=True)
class Target:
    id: str
    server: str
    layer: str
    app: str | None  # module:attr; None: the layer's contract app
    route: str  # the path without its ?ms=
    tokens: int | None  # the limiter GET /limiter must report (FastAPI apps); None: a WSGI rung
    ceiling_threads: int | None  # threads that can wait at once (None: no thread bound)
    colour: str
    flags: tuple[tuple[str, Any], ...] = ()

    def path(self, wait_ms: int) -> str:
        return f"{self.route}?ms={wait_ms}"

    def checks(self, wait_ms: int) -> list[Check]:
        """What the app must answer before it is measured: the wait, and for FastAPI the limiter in force."""
        if self.tokens is None:
            return [Check(self.path(wait_ms), json={"slept_ms": wait_ms})]
        variant = self.route.rsplit("/", 1)[-1]
        return [
            Check("/limiter", json={"total_tokens": self.tokens}),
            Check(self.path(wait_ms), json={"slept_ms": wait_ms, "variant": variant}),
        ]


APP = "layers.fastapi.experiments:app"
TARGETS: tuple[Target, ...] = (
    Target(
        "fastapi def (40 tokens)",
        "uvicorn",
        "fastapi",
        APP,
        "/block/def-sleep",
        ANYIO_DEFAULT_TOKENS,
        ANYIO_DEFAULT_TOKENS,
        "#d62728",
    ),
    Target(
        "fastapi def (256 tokens)",
        "uvicorn",
        "fastapi",
        "layers.fastapi.experiments:app_raised",
        "/block/def-sleep",
        RAISED_TOKENS,
        RAISED_TOKENS,
        "#1f77b4",
    ),
    Target("fastapi async def", "uvicorn", "fastapi", APP, "/block/async-sleep", ANYIO_DEFAULT_TOKENS, None, "#2ca02c"),
    Target(
        "gunicorn-gthread (8 threads)",
        "gunicorn-gthread",
        "bare_wsgi",
        None,
        "/slow",
        None,
        8,
        "#ff7f0e",
        (("threads", 8), ("workers", 1)),
    ),
    Target(
        "scratch-wsgi (8 threads)",
        "scratch-wsgi",
        "bare_wsgi",
        None,
        "/slow",
        None,
        8,
        "#8c564b",
        (("threads", 8), ("workers", 1)),
    ),
)


SCHEMA = common.schema(
    KIND,
    (
        Field(
            "targets",
            (list,),
            (KIND,),
            "every target: id, server, layer, app, path, ceiling_rps, native_command or error",
        ),
        Field("targets[].id", (str,), (KIND,), "what the chart calls it"),
        Field(
            "targets[].ceiling_rps",
            (int, float, type(None)),
            (KIND,),
            "threads / wait: the most a thread-bound target can complete per second (null: not thread-bound)",
        ),
        *(Field(path, types, (KIND,), meaning) for path, types, meaning in common.SWEEP_FIELDS),
    ),
)


def validate(doc: Any) -> list[str]:
    return common.validate(doc, SCHEMA)


def plan(config: LabConfig) -> list[Target]:
    targets = list(TARGETS)
    if config.servers:
        targets = [t for t in targets if t.server in config.servers]
        if not targets:
            raise LayercakeError(
                f"--experiment {NAME} runs on {', '.join(dict.fromkeys(t.server for t in TARGETS))}", 2
            )
    if config.smoke:
        targets = targets[:1]
    return targets


def ceiling(target: Target, wait_ms: int) -> float | None:
    return None if target.ceiling_threads is None else target.ceiling_threads / (wait_ms / 1000)


def run(config: LabConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    targets = plan(config)
    sweep = config.concurrency or (SMOKE_CONCURRENCY if config.smoke else CONCURRENCY)
    duration = config.duration or (SMOKE_DURATION if config.smoke else DURATION)
    rounds = config.rounds or (SMOKE_ROUNDS if config.smoke else ROUNDS)
    wait = config.wait_ms or WAIT_MS
    server_cpu, loadgen_cpu = common.cpus(config.pin)
    doc = common.envelope(
        NAME,
        command,
        {"wait_ms": wait, "concurrency": sweep, "duration_s": duration, "rounds": rounds, "smoke": config.smoke},
    )
    doc["targets"], doc["runs"] = [], []
    doc["environment"]["pinning"] = {"server_cpu": server_cpu, "loadgen_cpu": loadgen_cpu}
    doc["notes"].append(
        f"servers pinned to CPU {server_cpu}, wrk to CPU {loadgen_cpu}; every target is up for the whole run and "
        f"the cells are interleaved over {rounds} rounds (medians shown)"
        if server_cpu is not None
        else "not pinned"
    )
    steps = Steps(len(targets) * (1 + len(sweep) * rounds), progress)
    failed: dict[str, str] = {}
    t0 = time.monotonic()
    with ExitStack() as stack, common.interruptible(doc, t0):
        live: dict[str, tuple[str, str]] = {}
        for target in targets:
            tdoc: dict[str, Any] = {
                "id": target.id,
                "server": target.server,
                "layer": target.layer,
                "app": target.app,
                "path": target.path(wait),
                "ceiling_rps": ceiling(target, wait),
            }
            doc["targets"].append(tdoc)
            steps.note(f"starting and verifying {target.id}")
            try:
                srv = stack.enter_context(
                    common.start(
                        target.server,
                        target.layer,
                        target.app,
                        target.checks(wait),
                        cpu=server_cpu,
                        **dict(target.flags),
                    )
                )
                tdoc["native_command"] = srv.native_command
                common.load(srv.url, target.path(wait), max(sweep), 1, loadgen_cpu, config.generator)  # warm the pool
            except LayercakeError as exc:
                failed[target.id] = exc.message.splitlines()[0]
            else:
                live[target.id] = (srv.url, target.path(wait))
            steps.advance()
        by_id = {t.id: t for t in targets}

        def long_enough(target_id: str, c: int) -> float:
            # The expected wait in the queue: c requests over `threads` threads of `wait` each; 2.5x that,
            # in whole seconds (wrk's resolution), capped at 10 s (wrk's timeout: longer is an error anyway).
            threads = by_id[target_id].ceiling_threads or c
            return min(10.0, math.ceil(2.5 * wait / 1000 * max(1.0, c / threads)))

        common.sweep(
            live, sweep, rounds, duration, loadgen_cpu, config.generator, steps, doc["runs"], failed, long_enough
        )
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
    WAIT_MS = doc["settings"]["wait_ms"]  # noqa: N806 -- the run's, which --wait-ms may have changed
    t = Table(title=f"threadpool: req/s and p50 of a {WAIT_MS} ms wait, by requests in flight", title_justify="left")
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
    WAIT_MS = doc["settings"]["wait_ms"]  # noqa: N806 -- the run's, which --wait-ms may have changed
    out = common.md_header(
        doc,
        f"Experiment: the thread pool behind a `def` endpoint ({WAIT_MS} ms wait)",
        f"A handler that blocks {WAIT_MS} ms, from 1 to {max(sweep) if sweep else '?'} requests in flight: where "
        f"does anyio's default of {ANYIO_DEFAULT_TOKENS} thread tokens turn into a latency cliff, and what does "
        "raising it change?",
    )
    out += ["![throughput and latency by requests in flight](threadpool.png)", ""]
    out += [
        f"req/s (p50 / p99), each the median of {doc['settings']['rounds']} interleaved runs of "
        f"{common.run_lengths(doc)} (every run, with its round, is in the JSON):",
        "",
        "| target | ceiling | " + " | ".join(f"c={c}" for c in sweep) + " |",
        "|---|--:|" + "--:|" * len(sweep),
    ]
    ceilings = {t["id"]: t["ceiling_rps"] for t in doc["targets"]}
    for target in targets:
        row = []
        for c in sweep:
            p = cells.get((target, c))
            row.append(
                f"{p['rps']:,.0f} ({common.ms(p['p50_ms'])} / {common.ms(p['p99_ms'])})"
                + (f" **{p['errors']} errors ⚠**" if p["errors"] else "")
                if p
                else "–"
            )
        ceil = ceilings.get(target)
        out.append(f"| {target} | {f'{ceil:,.0f}' if ceil else '–'} | " + " | ".join(row) + " |")
    out += [
        "",
        f"Ceiling: threads ÷ {WAIT_MS} ms, the most a thread-bound target can finish per second. The fix is one line "
        "in a lifespan handler (`layers/fastapi/experiments.py`, `raise_thread_limit`): "
        f"`anyio.to_thread.current_default_thread_limiter().total_tokens = {RAISED_TOKENS}`.",
        "",
        "req/s counts the requests completed over each run, and none can complete during its first wait, so "
        f"where the wait is a good part of the run ({WAIT_MS} ms here, runs of "
        f"{doc['settings']['duration_s']:g} s or longer) it reads low by about that share, alike for every target.",
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
    WAIT_MS = doc["settings"]["wait_ms"]  # noqa: N806 -- the run's, which --wait-ms may have changed
    if not targets:
        return []
    colours = {t.id: t.colour for t in TARGETS}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for target in targets:
        series = [(c, cells[(target, c)]) for c in sweep if (target, c) in cells]
        xs = [c for c, _ in series]
        colour = colours.get(target)
        ax1.plot(xs, [p["rps"] for _, p in series], marker="o", label=target, color=colour)
        ax2.plot(xs, [p["p50_ms"] for _, p in series], marker="o", label=f"{target} p50", color=colour)
        ax2.plot(xs, [p["p99_ms"] for _, p in series], linestyle=":", color=colour)
    for ax in (ax1, ax2):
        ax.axvline(ANYIO_DEFAULT_TOKENS, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("requests in flight")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sweep, [str(c) for c in sweep])
    top = ax1.get_ylim()[1]
    ax1.text(ANYIO_DEFAULT_TOKENS * 1.03, top * 0.95, "anyio default:\n40 tokens", fontsize=8, va="top", color="grey")
    ax1.plot(
        sweep,
        [c / (WAIT_MS / 1000) for c in sweep],
        color="grey",
        linewidth=0.8,
        linestyle=":",
        label=f"ideal: in flight ÷ {WAIT_MS} ms",
    )
    ax1.set_ylim(0, top)
    ax1.set_ylabel("requests/s")
    ax1.set_title(f"Throughput (40 tokens allow at most 40 ÷ {WAIT_MS} ms = {40 / (WAIT_MS / 1000):,.0f}/s)")
    ax1.legend(fontsize=7, loc="upper left")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency, ms (solid: p50, dotted: p99)")
    ax2.set_title("Latency: a request that finds no free thread or token queues")
    ax2.legend(fontsize=7, loc="upper left")
    wsgi = " vs WSGI threads" if any(t["layer"] == "bare_wsgi" for t in doc["targets"]) else ""
    fig.suptitle(f"FastAPI def vs async def{wsgi}, each request waiting {WAIT_MS} ms")
    return [common.save_figure(fig, doc, directory / "threadpool.png")]
