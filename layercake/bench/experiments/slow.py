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

The Node.js peer (``--peers``) is not an experiment of its own: it joins the ladder
as one more target (``runner.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from layercake.bench.runner import REFERENCE, BenchConfig, Progress, run_bench

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
