"""``blocking``: what one blocking call inside ``async def`` costs everyone else on the server.

The question
------------
The same handler -- wait 50 ms, answer a little JSON -- written three ways
(``layers/fastapi/experiments.py``, ``layers/starlette/experiments.py``):

- ``async-sleep``: ``async def`` + ``await asyncio.sleep(0.05)`` -- the coroutine parks on a timer;
- ``async-time-sleep``: ``async def`` + ``time.sleep(0.05)`` -- **the mistake**: the event loop itself
  sleeps, so nothing else on that worker runs for those 50 ms;
- ``def-sleep``: ``def`` + ``time.sleep(0.05)`` -- the framework runs it in anyio's thread pool.

Theory of operation
-------------------
For each app on each ASGI server (FastAPI and Starlette on uvicorn and scratch-asgi), wrk keeps
:data:`IN_FLIGHT` requests to one variant in flight for the point's duration, and a *bystander*
(``common.Bystander``) asks for ``GET /plaintext`` every 10 ms, each time on a new connection and on
schedule whether or not earlier answers have come (open loop), and times each answer from when it was
due.  A first point per server, ``idle``, has no load at all: the bystander's latency on a quiet
server, the yardstick for the rest.

Expected, and what the chart shows at a glance: with ``async-sleep`` and ``def-sleep`` the bystander
is answered in about a millisecond, as on the idle server; with ``async-time-sleep`` every
bystander request waits behind the blocked loop -- up to ``IN_FLIGHT`` x 50 ms = 800 ms -- and the
16 blockers themselves complete only 20 a second (1 / 50 ms), because they too take turns.

The server is pinned to one CPU, wrk and the bystander to the other, as in the ladder.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from layercake.bench.experiments import common
from layercake.bench.experiments.common import Check, LabConfig, Progress, Steps
from layercake.bench.report import Field
from layercake.errors import LayercakeError

NAME = "blocking"
KIND = f"experiment:{NAME}"
WAIT_MS = 50
IN_FLIGHT = 16
VARIANTS = ("async-sleep", "async-time-sleep", "def-sleep")
SERVERS = ("uvicorn", "scratch-asgi")
LAYERS = ("fastapi", "starlette")
#: Seconds per point: long enough for a few hundred bystander samples at one per 10 ms.
DURATION = 4.0
SMOKE_DURATION = 1.0
LABELS = {
    "idle": "idle server (no load)",
    "async-sleep": "async def + await asyncio.sleep",
    "async-time-sleep": "async def + time.sleep (the mistake)",
    "def-sleep": "def + time.sleep (thread pool)",
}
COLOURS = {"idle": "#9e9e9e", "async-sleep": "#2ca02c", "async-time-sleep": "#d62728", "def-sleep": "#1f77b4"}

SCHEMA = common.schema(
    KIND,
    (
        Field("points[].server", (str,), (KIND,), "registry name: uvicorn | scratch-asgi"),
        Field("points[].layer", (str,), (KIND,), "fastapi | starlette (their experiment apps)"),
        Field("points[].variant", (str,), (KIND,), "idle | async-sleep | async-time-sleep | def-sleep"),
        Field("points[].in_flight", (int,), (KIND,), "blocking requests kept in flight by wrk (0 when idle)"),
        Field(
            "points[].bystander",
            (dict,),
            (KIND,),
            "GET /plaintext every 10 ms: requests, answered, timeouts, errors, p50_ms, p99_ms, max_ms",
        ),
        Field(
            "points[].blockers",
            (dict, type(None)),
            (KIND,),
            "the load: rps, p50_ms, p90_ms, p99_ms, errors (null when idle)",
        ),
    ),
)


def validate(doc: Any) -> list[str]:
    return common.validate(doc, SCHEMA)


def app_target(layer: str) -> str:
    return f"layers.{layer}.experiments:app"


def checks(wait_ms: int = WAIT_MS) -> list[Check]:
    """What the experiment app must answer before it is measured."""
    return [Check("/plaintext", body=b"Hello, World!")] + [
        Check(f"/block/{v}?ms={wait_ms}", json={"slept_ms": wait_ms, "variant": v}) for v in VARIANTS
    ]


def plan(config: LabConfig) -> list[tuple[str, str]]:
    servers = config.servers or list(SERVERS)
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        raise LayercakeError(f"--experiment {NAME} runs on {', '.join(SERVERS)}; not on {', '.join(unknown)}", 2)
    if config.smoke:
        return [(servers[0], "starlette")]
    return [(s, layer) for layer in LAYERS for s in servers]


def run(config: LabConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    targets = plan(config)
    duration = config.duration or (SMOKE_DURATION if config.smoke else DURATION)
    in_flight = (config.concurrency or [IN_FLIGHT])[0]
    wait = config.wait_ms or WAIT_MS
    server_cpu, loadgen_cpu = common.cpus(config.pin)
    doc = common.envelope(
        NAME,
        command,
        {
            "wait_ms": wait,
            "in_flight": in_flight,
            "duration_s": duration,
            "bystander_interval_ms": 10,
            "targets": [f"{s}/{la}" for s, la in targets],
            "smoke": config.smoke,
        },
    )
    doc["environment"]["pinning"] = {"server_cpu": server_cpu, "loadgen_cpu": loadgen_cpu}
    doc["notes"].append(
        f"server pinned to CPU {server_cpu}, wrk and the bystander to CPU {loadgen_cpu}"
        if server_cpu is not None
        else "not pinned (fewer than two CPUs, or --no-pin)"
    )
    steps = Steps(len(targets) * (1 + len(VARIANTS)), progress)
    t0 = time.monotonic()
    with common.interruptible(doc, t0):
        for server, layer in targets:
            steps.note(f"starting {server}/{layer} (experiment app)")
            try:
                srv = common.start(server, layer, app_target(layer), checks(wait), cpu=server_cpu)
            except LayercakeError as exc:
                doc["notes"].append(f"{server}/{layer} not measured: {exc.message.splitlines()[0]}")
                steps.advance(1 + len(VARIANTS))
                continue
            with srv:
                steps.note(f"{server}/{layer}: bystander on an idle server")
                bystander = common.Bystander(srv.host, srv.port).start()
                time.sleep(duration * 0.6)
                doc["points"].append(_point(server, layer, "idle", 0, bystander.stop(), None))
                steps.advance()
                for variant in VARIANTS:
                    steps.note(f"{server}/{layer}: {in_flight} × {variant} in flight, bystander timing /plaintext")
                    try:
                        blockers, seen = common.load_with_bystander(
                            srv.url,
                            srv.host,
                            srv.port,
                            f"/block/{variant}?ms={wait}",
                            in_flight,
                            duration,
                            loadgen_cpu,
                            config.generator,
                        )
                    except LayercakeError as exc:  # the server died mid-run: a result too
                        doc["notes"].append(f"{server}/{layer} stopped answering: {exc.message.splitlines()[0]}")
                        steps.advance(len(VARIANTS) - VARIANTS.index(variant))
                        break
                    doc["points"].append(_point(server, layer, variant, in_flight, seen, blockers))
                    steps.advance()
    return doc


def _point(server: str, layer: str, variant: str, in_flight: int, seen: dict, blockers: dict | None) -> dict:
    return {
        "server": server,
        "layer": layer,
        "variant": variant,
        "in_flight": in_flight,
        "bystander": seen,
        "blockers": blockers,
    }


# --- output ---------------------------------------------------------------------------------------------------------------


def table(doc: dict[str, Any]) -> Table:
    t = Table(
        title=f"blocking: GET /plaintext while {doc['settings']['in_flight']} requests wait "
        f"{doc['settings']['wait_ms']} ms",
        title_justify="left",
    )
    for col, just in (
        ("server/app", "left"),
        ("handler in flight", "left"),
        ("bystander p50", "right"),
        ("p99", "right"),
        ("timeouts", "right"),
        ("blockers req/s", "right"),
    ):
        t.add_column(col, justify="right" if just == "right" else "left")
    for p in doc["points"]:
        b = p["bystander"]
        red = p["variant"] == "async-time-sleep"
        t.add_row(
            f"{p['server']}/{p['layer']}",
            LABELS[p["variant"]],
            common.ms(b["p50_ms"]),
            f"[bold red]{common.ms(b['p99_ms'])}[/]" if red else common.ms(b["p99_ms"]),
            str(b["timeouts"]),
            f"{p['blockers']['rps']:,.0f}" if p["blockers"] else "–",
        )
    return t


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    out = common.md_header(
        doc,
        "Experiment: one blocking call in `async def`",
        f"While {s['in_flight']} requests wait {s['wait_ms']} ms each -- written three ways -- how long does "
        "another client wait for `GET /plaintext` on the same server?",
    )
    out += ["![bystander latency per handler variant](blocking.png)", ""]
    out += [
        "| server/app | handler in flight | bystander p50 | p99 | max | answered | timeouts | blockers req/s |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for p in doc["points"]:
        b = p["bystander"]
        rps = f"{p['blockers']['rps']:,.0f}" if p["blockers"] else "–"
        out.append(
            f"| {p['server']}/{p['layer']} | {LABELS[p['variant']]} | {common.ms(b['p50_ms'])} | "
            f"{common.ms(b['p99_ms'])} | {common.ms(b['max_ms'])} | {b['answered']} | {b['timeouts']} | {rps} |"
        )
    out += [
        "",
        "How to read it: `time.sleep` inside `async def` stops the event loop, so the bystander waits behind "
        "every blocked request, and the blockers themselves finish one at a time (about 1 / 50 ms = 20 req/s). "
        "`await asyncio.sleep` and a plain `def` (run in anyio's thread pool) leave the loop free: the bystander "
        "is served as on an idle server.",
        "",
        "The handlers: `layers/fastapi/experiments.py`, `layers/starlette/experiments.py`; the harness: "
        "`layercake/bench/experiments/blocking.py`.",
    ]
    return "\n".join(out) + "\n"


def charts(doc: dict[str, Any], directory: Any) -> list[Any]:
    plt = common.pyplot()
    points = doc["points"]
    if not points:
        return []
    targets = list(dict.fromkeys(f"{p['server']}/{p['layer']}" for p in points))
    variants = ["idle", *VARIANTS]
    fig, ax = plt.subplots(figsize=(10, 6))
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        cells = {f"{p['server']}/{p['layer']}": p for p in points if p["variant"] == v}
        xs = [x + i * width for x, t in enumerate(targets) if t in cells]
        p99 = [cells[t]["bystander"]["p99_ms"] or 0 for t in targets if t in cells]
        p50 = [cells[t]["bystander"]["p50_ms"] or 0 for t in targets if t in cells]
        answered = [cells[t]["bystander"]["answered"] for t in targets if t in cells]
        bars = ax.bar(xs, p99, width, label=LABELS[v], color=COLOURS[v])
        ax.scatter(xs, p50, color="black", marker="_", s=120, zorder=3)
        for bar, value, n in zip(bars, p99, answered, strict=True):
            # A stalled bystander gets few answers in the window: say how few, next to the figure.
            text = common.ms(value) + (f"\n({n} answered)" if n < 20 else "")
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7)
    ax.scatter([], [], color="black", marker="_", s=120, label="bystander p50")
    ax.set_xticks([x + width * (len(variants) - 1) / 2 for x in range(len(targets))], targets)
    ax.set_yscale("log")
    ax.set_ylabel("bystander GET /plaintext latency, ms (bar: p99, tick: p50)")
    ax.set_title(
        f"While {doc['settings']['in_flight']} requests wait {doc['settings']['wait_ms']} ms, "
        "how long does another client wait?"
    )
    ax.set_ylim(top=ax.get_ylim()[1] * 4)  # room for the labels above the tallest bar
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    return [common.save_figure(fig, doc, directory / "blocking.png")]
