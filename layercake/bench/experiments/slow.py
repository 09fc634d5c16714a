"""Experiments: benchmarks that answer one question each, built on the same runner.

``slow`` -- *why does ASGI exist?*  ``GET /slow?ms=50`` waits 50 ms without using CPU
(``time.sleep`` in a WSGI layer, ``await asyncio.sleep`` in an ASGI layer; CONTRACT.md
row 11).  A WSGI server holds a thread for the whole wait, so a pool of N threads
completes at most N / 0.05 s requests per second however many clients wait: with
gunicorn's gthread worker at 8 threads that is 160 req/s, and past 8 connections the
rest queue, so p99 latency grows with the number of clients (about concurrency / 160
seconds).  An ASGI server parks the coroutine and serves others, so throughput grows
with concurrency (about concurrency / 0.05 s) until the CPU, not the wait, is the
limit, and p99 stays near 50 ms.  The experiment runs the bare layers (or the ones
given with ``--layers``) on the reference servers at rising concurrency and plots
throughput and p99 against concurrency.

``ceiling(…)`` records the expected thread-pool ceiling next to the measurement, so
the chart's reader can check the theory against the numbers.

``parsers`` -- *what does the parser cost, and the event loop?*  ``GET /plaintext`` of
the bare layers on every parser x event loop pair of our servers and of uvicorn (h11
or httptools, asyncio or uvloop), beside waitress (8 threads), gunicorn's gthread
worker and granian as the reference rows, and the floor; then, in process, µs and
Python calls per request for each of our parser backends (``parsers.py``).  The same
matrix as ``python -m servers.bench_scratch``, run by the ladder's runner (contract
verified first, results in the ladder's JSON schema, ``kind: "ladder"`` with
``settings.experiment: "parsers"`` and a ``parser_costs`` list).

The Node.js peer (``--peers``) is not an experiment of its own: it joins the ladder
as one more target (``runner.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from layercake.bench.runner import REFERENCE, BenchConfig, Progress, Target, run_bench

SLOW_MS = 50
SLOW_CONCURRENCY = [1, 8, 32, 128, 256]
SLOW_LAYERS = ["bare_wsgi", "bare_asgi"]


def thread_pool_ceiling(threads: int, wait_ms: int = SLOW_MS) -> float:
    """Requests/s a pool of ``threads`` blocking threads can complete when each request waits ``wait_ms``."""
    return threads / (wait_ms / 1000)


def slow_config(config: BenchConfig, sweep: bool = False) -> BenchConfig:
    """``config`` made into the experiment: /slow only, no floor or peer, the bare layers by default.

    ``sweep``: keep the caller's concurrency list (else :data:`SLOW_CONCURRENCY`).  Runs
    last at least 2 s: at c=1 a 50 ms request gives 20 samples a second, too few for a p99.
    """
    return replace(
        config,
        endpoints=["slow"],
        floor=False,
        peers=False,
        layers=config.layers or SLOW_LAYERS,
        concurrency=config.concurrency if sweep else list(SLOW_CONCURRENCY),
        duration=max(config.duration, 2),
    )


def run_slow(config: BenchConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    """The sync-vs-async experiment; a results document of kind ``experiment:slow``."""
    config = replace(config, endpoints=["slow"], floor=False, peers=False, layers=config.layers or SLOW_LAYERS)
    doc = run_bench(config, progress, command)
    doc["kind"] = "experiment:slow"
    threads = dict(REFERENCE["wsgi"][1]).get("threads", 8)
    doc["settings"]["expected"] = {
        "wsgi_thread_pool_ceiling_rps": thread_pool_ceiling(threads),
        "asgi_ideal_rps_per_connection": 1000 / SLOW_MS,
        "note": (
            f"a WSGI pool of {threads} threads completes at most {threads} / {SLOW_MS} ms = "
            f"{thread_pool_ceiling(threads):.0f} req/s; an ASGI loop about concurrency / {SLOW_MS} ms until "
            "the CPU saturates"
        ),
    }
    return doc


#: The servers whose parser and loop choices form the matrix (only h11 and httptools: the pair uvicorn offers).
PARSER_SERVERS = ("scratch-asgi", "uvicorn", "scratch-wsgi")
PARSER_CHOICES = ("h11", "httptools")
#: The reference rows, each with the flags that make it comparable (8 threads where there is a pool).
PARSER_REFERENCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("waitress", {"threads": 8}),
    ("gunicorn-gthread", {"workers": 1, "threads": 8}),
    ("granian-asgi", {"workers": 1}),
    ("granian-wsgi", {"workers": 1}),
)


def parser_matrix() -> list[Target]:
    """Every (server, --http, --loop) of the matrix whose server is installed, then the reference rows."""
    from layers import get_layer
    from servers.registry import get_server

    targets = []
    for name in PARSER_SERVERS:
        spec = get_server(name)
        if not spec.available:
            continue
        layer = get_layer({"asgi": "bare_asgi", "wsgi": "bare_wsgi"}[spec.interface])
        loops: tuple[str | None, ...] = spec.capabilities.loops or (None,)
        for http in (h for h in PARSER_CHOICES if h in spec.capabilities.http_parsers):
            for loop in loops:
                flags: dict[str, Any] = {"http": http, **({"loop": loop} if loop else {})}
                if spec.capabilities.threads:
                    flags["threads"] = 8
                label = http + (f"+{loop}" if loop else "")
                targets.append(Target(name, layer.name, layer.interface, tuple(sorted(flags.items())), label))
    for name, flags in PARSER_REFERENCES:
        spec = get_server(name)
        if spec.available:
            layer = get_layer({"asgi": "bare_asgi", "wsgi": "bare_wsgi"}[spec.interface])
            targets.append(Target(name, layer.name, layer.interface, tuple(sorted(flags.items()))))
    return targets


def parsers_config(config: BenchConfig) -> BenchConfig:
    """``config`` made into the parsers experiment: plaintext only, the matrix, the floor as the baseline."""
    return replace(config, endpoints=["plaintext"], peers=False, floor=True, targets=parser_matrix())


def run_parsers(config: BenchConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    """The parser x loop experiment and the in-process parser table; a ladder document with both."""
    from layercake.bench.parsers import parser_costs

    doc = run_bench(parsers_config(config), progress, command)
    doc["settings"]["experiment"] = "parsers"
    doc["parser_costs"] = [cost.to_dict() for cost in parser_costs()]
    return doc
