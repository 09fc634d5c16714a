"""layercake's benchmarks: what each layer and each server costs, measured so it can be trusted.

Theory of operation
-------------------
Two instruments, one results format.

*Over real sockets* (``runner.py``): each layer on a reference server of its
interface -- uvicorn with httptools and uvloop for ASGI, gunicorn's gthread worker
for WSGI -- next to the *floor* (``floor.py``: an asyncio protocol answering fixed
bytes, the most Python can do on this socket) and optionally a Node.js peer
(``node_peer.js``).  Every target is verified against the contract before it is
loaded; the server is pinned to one CPU and the load generator (``loadgen.py``: wrk,
or a built-in generator that declares its ceiling) to another; every cell is
repeated in interleaved rounds and summarised by its median and range
(``stats.py``), with ratios measured in the same run.

*In-process* (``costs.py``): no socket at all -- a prebuilt environ or scope
driven through the app -- for µs per request and for deterministic work counters
(Python and C calls, distinct lines executed, bytes allocated) broken down by
package.  :func:`quick_ladder` is the short version ``layercake tour`` shows.

*Experiments* (``experiments.py``): ``slow`` runs ``/slow?ms=50`` at rising
concurrency on a WSGI thread pool and an ASGI event loop -- the curve that shows why
ASGI exists.

Everything measured becomes one JSON results document; tables, markdown reports,
charts and ``--compare`` are rendered from it (``report.py``).  The schema is
``report.SCHEMA`` and is printed as a table in docs/bench.md, with the methodology
and how to check the harness against a plain ``wrk`` by hand.  Benchmarks reuse the
contract's apps and routes (``endpoints.py``): never benchmark-only handlers.
"""

from __future__ import annotations

import importlib
from typing import Any

# The public names, resolved on first use (PEP 562).  Importing them eagerly here would
# make ``python -m layercake.bench.loadgen`` (the built-in generator) and ``python -m
# layercake.bench.costs`` (one layer's measurement) import their own module twice --
# once as part of this package, once as __main__ -- which runpy warns about.
_EXPORTS = {
    "ENDPOINTS": "endpoints",
    "LADDER_ENDPOINTS": "endpoints",
    "Endpoint": "endpoints",
    "quick_check": "endpoints",
    "LadderRow": "costs",
    "measure": "costs",
    "quick_ladder": "costs",
    "LoadResult": "loadgen",
    "Request": "loadgen",
    "parse_wrk_output": "loadgen",
    "run_load": "loadgen",
    "SCHEMA": "report",
    "validate": "report",
    "BenchConfig": "runner",
    "run_bench": "runner",
    "Spread": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'layercake.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"layercake.bench.{_EXPORTS[name]}"), name)
