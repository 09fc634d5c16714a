"""The compatibility grid: every layer on every server, checked for real.

Theory of operation
-------------------
For each (layer, server) pair, :func:`run_pair` starts the server with
:func:`servers.supervise.start_server` on a free loopback port -- through an a2wsgi bridge
when the interfaces differ -- runs the whole contract over HTTP
(:func:`layercake.contract.run_contract`) and stops the server and all its workers.  The
result is a :class:`Cell`: passed/total per case group (http, streaming, upload,
websocket, lifespan), and each failed case with the contract's reason and, when the
registry knows it, *why* this server or bridge -- or the layer itself, on any server --
cannot pass it (``ServerSpec.gaps``, ``servers.bridges.GAPS``, ``Layer.gaps``).  A failure nobody has explained is marked as such: that is a
bug to look at, in the server, the bridge, the layer or the contract.

Pairs run concurrently (``jobs``, default 2: each pair is one server process and one
client thread, and the machine may have two cores), each on its own port.  A pair whose
server is not installed is ``n/a`` with the pip extra to install; a server that fails to
start is ``✗`` with the tail of its output.

What it deliberately doesn't do: time anything.  Speed is ``layercake bench``'s job; the
grid says only *what works where*.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from layercake.errors import LayercakeError, MissingPackage
from layers import LAYERS, Layer, get_layer
from servers import bridges
from servers.registry import SERVERS, ServerOptions, ServerSpec, get_server
from servers.supervise import start_server, stop_all

Status = Literal["pass", "partial", "fail", "n/a"]

GROUP_ORDER = ("http", "streaming", "upload", "websocket", "lifespan")
#: Seconds per wait on a server: plenty on loopback, and a server that buffers a declared
#: body it will never get (waitress) spends it on each such case -- 20 s per pair, not a minute.
CONTRACT_TIMEOUT = 10.0
SYMBOL = {"pass": "✓", "partial": "◐", "fail": "✗", "n/a": "n/a"}


@dataclass
class Failure:
    case: str
    group: str
    detail: str  # what the contract saw
    known: str | None  # why this server/bridge cannot pass it, from the registry; None: unexplained


@dataclass
class Cell:
    layer: str
    server: str
    bridge: str | None
    status: Status
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (passed, total)
    failures: list[Failure] = field(default_factory=list)
    reason: str = ""  # for n/a and ✗: why there are no results
    native_command: str = ""
    seconds: float = 0.0
    server_output: str = ""  # the server's last lines, kept only when a failure is unexplained

    @property
    def passed(self) -> int:
        return sum(p for p, _ in self.groups.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.groups.values())

    @property
    def unexplained(self) -> list[Failure]:
        return [f for f in self.failures if f.known is None]

    def summary(self) -> str:
        """One short line: ``✓ 22/22``, ``◐ 20/22 websocket 0/1 upload 1/2``, ``✗ reason``, ``n/a reason``."""
        if self.status in ("n/a", "fail") and not self.groups:
            return f"{SYMBOL[self.status]} {self.reason.splitlines()[0] if self.reason else ''}".strip()
        text = f"{SYMBOL[self.status]} {self.passed}/{self.total}"
        lacking = [f"{g} {p}/{t}" for g in GROUP_ORDER if g in self.groups for p, t in [self.groups[g]] if p < t]
        return " ".join([text, *lacking])


def known_gap(spec: ServerSpec, bridge: str | None, case_id: str, layer: Layer | None = None) -> str | None:
    """Why ``spec`` (through ``bridge``) cannot pass ``case_id``, if the registry says -- or
    why ``layer`` cannot, on any server (``Layer.gaps``: Django's ASGI handler has no lifespan)."""
    if layer is not None and case_id in layer.gaps:
        return f"{layer.name}: {layer.gaps[case_id]}"
    if bridge and case_id in bridges.GAPS.get(bridge, {}):
        return f"{bridge} bridge: {bridges.GAPS[bridge][case_id]}"
    if case_id in spec.gaps:
        return f"{spec.name}: {spec.gaps[case_id]}"
    return None


class Cancelled(Exception):
    """Raised inside a pair's contract run once the grid has been interrupted."""


def run_pair(
    layer: Layer, spec: ServerSpec, opts: ServerOptions | None = None, cancel: threading.Event | None = None
) -> Cell:
    """Start ``layer`` on ``spec``, run the contract over HTTP, stop it; never raises for the pair's sake.

    ``cancel``: once set, the pair stops after the case in progress (raising :class:`Cancelled`).
    """
    from layercake.contract import run_contract, summarize

    def on_result(result: object) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    bridge = spec.bridge_for(layer.interface)
    cell = Cell(layer.name, spec.name, bridge, "n/a")
    started = time.perf_counter()
    try:
        with start_server(spec, layer, opts or ServerOptions()) as srv:
            cell.native_command = srv.native_command
            results = run_contract(srv.url, layer, timeout=CONTRACT_TIMEOUT, on_result=on_result)
            if any(not r.ok and known_gap(spec, bridge, r.case.id, layer) is None for r in results):
                cell.server_output = "\n".join(srv.output().splitlines()[-40:])
    except MissingPackage as exc:
        cell.reason = f"not installed: {exc.message}"
        return cell
    except LayercakeError as exc:  # ServerStartError and friends: the server never served
        cell.status, cell.reason = "fail", exc.message
        cell.seconds = time.perf_counter() - started
        return cell
    cell.seconds = time.perf_counter() - started
    summary = summarize(results)
    cell.groups = {g: summary[g] for g in GROUP_ORDER if g in summary}
    cell.failures = [
        Failure(r.case.id, r.case.group, r.detail, known_gap(spec, bridge, r.case.id, layer))
        for r in results
        if not r.ok
    ]
    cell.status = "pass" if not cell.failures else ("fail" if cell.passed == 0 else "partial")
    return cell


@dataclass
class Grid:
    layers: list[str]
    servers: list[str]
    cells: list[Cell]
    environment: dict[str, Any]

    def cell(self, layer: str, server: str) -> Cell | None:
        return next((c for c in self.cells if c.layer == layer and c.server == server), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "layers": self.layers,
            "servers": self.servers,
            "cells": [asdict(c) | {"passed": c.passed, "total": c.total} for c in self.cells],
        }


def environment() -> dict[str, Any]:
    """What the grid ran on: Python and every server package's version (or None: missing)."""
    packages = sorted({req.package.split(">")[0] for spec in SERVERS.values() for req in spec.requires} | {"a2wsgi"})
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_grid(
    layers: Iterable[str] | None = None,
    servers: Iterable[str] | None = None,
    jobs: int = 2,
    on_cell: Callable[[Cell], None] | None = None,
) -> Grid:
    """Run every layer x server pair (all of both by default), ``jobs`` at a time.

    Ctrl-C (KeyboardInterrupt in the calling thread) cancels the pairs not started, stops
    the servers of the pairs running -- so their contract runs end at once instead of
    after up to a minute -- and is raised again once the pool has drained; ``on_cell``
    has by then been called for every pair that finished, which is what the caller keeps.
    """
    lays = [get_layer(name) for name in (layers or LAYERS)]
    specs = [get_server(name) for name in (servers or SERVERS)]
    pairs = [(lay, spec) for lay in lays for spec in specs]
    cancel = threading.Event()

    def one(pair: tuple[Layer, ServerSpec]) -> Cell:
        cell = run_pair(*pair, cancel=cancel)
        if on_cell and not cancel.is_set():
            on_cell(cell)
        return cell

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = [pool.submit(one, pair) for pair in pairs]
    try:
        cells = [future.result() for future in futures]
    except KeyboardInterrupt:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all(grace=0.5)
        # (wait() would count a future cancelled by shutdown() as pending until its timeout)
        wait([f for f in futures if not f.cancelled()], timeout=5.0)
        raise
    pool.shutdown()
    return Grid([lay.name for lay in lays], [s.name for s in specs], cells, environment())


def grid_of(cells: list[Cell], layers: Iterable[str] | None = None, servers: Iterable[str] | None = None) -> Grid:
    """A grid of the cells there are (an interrupted run's), in the registry's order."""
    lays = [name for name in (layers or LAYERS) if any(c.layer == name for c in cells)]
    specs = [name for name in (servers or SERVERS) if any(c.server == name for c in cells)]
    order = {(lay, spec): i for i, (lay, spec) in enumerate((x, y) for x in lays for y in specs)}
    ordered = sorted(cells, key=lambda c: order.get((c.layer, c.server), len(order)))
    return Grid(lays, specs, ordered, environment())


# ---------------------------------------------------------------------------------- output


def explanations(grid: Grid) -> list[tuple[str, str, str]]:
    """(pair, case, why) for every failure, the known ones with their reason."""
    rows = []
    for c in grid.cells:
        pair = f"{c.layer} on {c.server}" + (f" ({c.bridge})" if c.bridge else "")
        if c.status in ("fail", "n/a") and not c.groups:
            rows.append((pair, "-", c.reason.splitlines()[0] if c.reason else ""))
        for f in c.failures:
            rows.append(
                (pair, f"{f.group}/{f.case}", f"known -- {f.known}" if f.known else f"UNEXPLAINED -- {f.detail}")
            )
    return rows


def cell_text(c: Cell | None) -> str:
    """A cell as a few characters: ``✓ 22/22``, ``◐ 20/22``, ``✗ 0/22``, ``✗ start``, ``n/a``; ``⇄`` when bridged."""
    if c is None:
        return ""
    if c.status in ("n/a", "fail") and not c.groups:
        text = "n/a" if c.status == "n/a" else "✗ start"
    else:
        text = f"{SYMBOL[c.status]} {c.passed}/{c.total}"
    return text + (" ⇄" if c.bridge else "")


def not_installed(grid: Grid) -> dict[str, str]:
    """server -> the one line saying what to install, for every server that was n/a."""
    return {c.server: c.reason.removeprefix("not installed: ") for c in grid.cells if c.status == "n/a"}


def render(grid: Grid, width: int = 80) -> Any:
    """A rich renderable: servers as rows and layers as columns (so it fits 80 columns and
    every name is whole), then every failure with its reason, then the bridges' losses."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    from layercake import terminal

    style = {"pass": "green", "partial": "yellow", "fail": "red", "n/a": "dim"}

    def cell(row: int, column: int) -> Text:
        c = grid.cell(grid.layers[column], grid.servers[row])
        if c is None:
            return Text("")
        # yellow: only known gaps; red: something nobody has explained yet
        return Text(cell_text(c), style="red" if c.unexplained else style[c.status])

    parts: list[Any] = [
        Text("layercake grid: the contract on every server", style="bold"),
        Text("cases passed / run; ⇄ = through an a2wsgi bridge", style="dim"),
    ]
    parts += terminal.banded(
        width,
        "server",
        grid.servers,
        grid.layers,
        cell,
        cell_width=max([len(cell_text(c)) for c in grid.cells] or [0]),
    )
    missing = not_installed(grid)
    if missing:
        by_reason: dict[str, list[str]] = {}
        for server, reason in missing.items():
            by_reason.setdefault(reason.split("; ", 1)[-1], []).append(server)
        for how, names in by_reason.items():
            parts.append(Text(f"n/a = not installed: {', '.join(names)}; {how}", style="dim"))
    # One entry per server, case and reason, naming the layers it applies to: a gap of the
    # server shows once, not once per layer.
    why: dict[tuple[str, str, bool], list[str]] = {}
    for c in grid.cells:
        where = c.server + (f" ({c.bridge} bridge)" if c.bridge else "")
        if c.status == "fail" and not c.groups:
            key = (f"{where}: did not start", c.reason.splitlines()[0] if c.reason else "", False)
            why.setdefault(key, []).append(c.layer)
        for f in c.failures:
            key = (
                f"{where}: {f.group}/{f.case}",
                f"known gap ({f.known})" if f.known else f"UNEXPLAINED: {f.detail}",
                f.known is not None,
            )
            why.setdefault(key, []).append(c.layer)
    if why:
        parts.append(Text("\nwhat fails, and why", style="bold"))
    for (head, reason, known), layers in why.items():
        colour = "yellow" if known else "red"
        parts.append(Text(f"{head}  [{', '.join(layers)}]", style=colour))
        parts.append(Padding(Text(reason, style=colour), (0, 0, 0, 4), expand=False))
    used = {c.bridge for c in grid.cells if c.bridge}
    for bridge in sorted(used):
        parts.append(Text(f"⇄ {bridge}: " + "; ".join(bridges.LOSSES[bridge]) + ".", style="cyan"))
    return Group(*parts)


def to_markdown(grid: Grid, partial_note: str = "") -> str:
    env = grid.environment
    lines = [
        "# Compatibility grid",
        "",
        *([partial_note.rstrip(), ""] if partial_note else []),
        f"Generated by `layercake grid` on Python {env['python']}, {env['platform']} ({env['when']}). "
        "Each cell: contract cases passed / run;",
        "groups short of full are named. ⇄ marks a pair served through an a2wsgi bridge.",
        "",
        "| server | " + " | ".join(grid.layers) + " |",
        "|---|" + "---|" * len(grid.layers),
    ]
    for server in grid.servers:
        cells = []
        for layer in grid.layers:
            c = grid.cell(layer, server)
            text = (c.summary() if c else "").replace("|", "\\|")
            cells.append(text + (f" ⇄ {c.bridge}" if c and c.bridge else ""))
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    rows = explanations(grid)
    if rows:
        lines += ["", "## What fails, and why", "", "| pair | case | why |", "|---|---|---|"]
        lines += [f"| {p} | {c} | {w.replace('|', '/')} |" for p, c, w in rows]
    lines += ["", "## Bridges", ""]
    for bridge, losses in bridges.LOSSES.items():
        lines.append(f"- **{bridge}**: " + "; ".join(losses) + ".")
    versions = ", ".join(f"{k} {v or 'missing'}" for k, v in env["packages"].items())
    lines += ["", f"Packages: {versions}.", ""]
    return "\n".join(lines)


def write_outputs(
    grid: Grid,
    json_file: Path | None = None,
    markdown_file: Path | None = None,
    partial: dict[str, Any] | None = None,
    partial_note: str = "",
) -> None:
    """Write the JSON and Markdown; an interrupted run's carry ``partial`` and ``partial_note``."""
    if json_file:
        doc = grid.as_dict() | ({"partial": partial} if partial else {})
        json_file.write_text(json.dumps(doc, indent=2) + "\n")
    if markdown_file:
        markdown_file.write_text(to_markdown(grid, partial_note))
