"""Experiments: benchmarks that answer one question each -- the sync-vs-async lab.

Each is ``layercake bench --experiment NAME``, writes a JSON document (``--json``), a markdown
report (``--markdown``) and PNG charts (``--charts``), and shows a progress bar while it runs.

- ``slow`` (``slow.py``) -- *why does ASGI exist?*  ``/slow?ms=50`` at rising concurrency on a WSGI
  thread pool and an ASGI event loop, run by the ladder's runner.
- ``blocking`` (``blocking.py``) -- *what does one blocking call in ``async def`` cost everyone
  else?*  A bystander times ``GET /plaintext`` while 16 requests wait 50 ms each, written three ways.
- ``threadpool`` (``threadpool.py``) -- *where is the cliff of a ``def`` endpoint?*  anyio's 40
  default tokens, swept from 1 to 128 in flight, beside the fix, ``async def`` and WSGI threads.
- ``cpu`` (``cpu.py``) -- *what scales CPU-bound work?*  Threads and the event loop serialize it
  (the GIL, the loop); only processes add throughput.
- ``capacity`` (``capacity.py``) -- *what does one open connection cost?*  N idle keep-alive
  connections (and WebSockets) held against each server: memory, threads, descriptors, and
  whether a new client is still served.

The four lab experiments share ``common.py`` (envelope, verified servers, loads, the bystander)
and their endpoints live in the experiment apps ``layers/<layer>/experiments.py``, never in the
contract apps.  The Node.js and Go peers (``--peers``) are not experiments: they join the ladder
as targets (``runner.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from layercake.bench.experiments.common import LabConfig, Progress
from layercake.bench.experiments.slow import (
    PARSER_SERVERS,
    SLOW_CONCURRENCY,
    SLOW_LAYERS,
    parser_matrix,
    parsers_config,
    run_parsers,
    run_slow,
    slow_config,
    thread_pool_ceiling,
)
from layercake.errors import UnknownName

#: The lab: name -> (module, one line for --help).  ``slow`` is run by the ladder's runner instead.
LAB: dict[str, tuple[str, str]] = {
    "blocking": ("blocking", "time.sleep inside async def vs await asyncio.sleep vs def: a bystander's latency"),
    "threadpool": ("threadpool", "a def endpoint from 1 to 128 in flight: anyio's 40-token cliff and the fix"),
    "cpu": ("cpu", "CPU-bound work on threads, on the event loop, and on 2 worker processes"),
    "capacity": ("capacity", "N idle connections held: memory, threads, fds, and whether a new client is served"),
}
NAMES = ("slow", *LAB)

__all__ = [
    "LAB",
    "NAMES",
    "PARSER_SERVERS",
    "SLOW_CONCURRENCY",
    "SLOW_LAYERS",
    "LabConfig",
    "module",
    "parser_matrix",
    "parsers_config",
    "run_lab",
    "run_parsers",
    "run_slow",
    "slow_config",
    "thread_pool_ceiling",
]


def module(name: str) -> Any:
    """The module of a lab experiment: ``run``, ``SCHEMA``, ``validate``, ``markdown``, ``charts``, ``table``."""
    if name not in LAB:
        raise UnknownName("experiment", name, LAB)
    return importlib.import_module(f"layercake.bench.experiments.{LAB[name][0]}")


def run_lab(name: str, config: LabConfig, progress: Progress | None = None, command: str = "") -> dict[str, Any]:
    """Run one lab experiment; its results document (partial when interrupted)."""
    return module(name).run(config, progress, command)


def write_outputs(
    doc: dict[str, Any], json_path: str | None, markdown_path: str | None, charts_dir: str | None, say: Callable
) -> None:
    """Write what was asked for; ``say`` is told each path written."""
    from layercake.bench.report import write_json

    mod = module(doc["kind"].removeprefix("experiment:"))
    if json_path:
        say(f"wrote {write_json(doc, json_path)}")
    if markdown_path:
        path = Path(markdown_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(mod.markdown(doc), encoding="utf-8")
        say(f"wrote {path}")
    if charts_dir:
        out = Path(charts_dir)
        out.mkdir(parents=True, exist_ok=True)
        for path in mod.charts(doc, out):
            say(f"wrote {path}")
