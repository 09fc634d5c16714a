"""``layercake anatomy LAYER``: what each feature of a framework costs, one feature per step.

A thin command over :mod:`layercake.anatomy`: it shows progress as each step is
measured, prints the table and the headline, and writes what was asked for (JSON,
markdown, the waterfall chart).  Ctrl-C keeps the steps already measured (exit 130).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layercake.errors import LayercakeError


def lib_default_seconds() -> float:
    from layercake.anatomy import DEFAULT_SECONDS

    return DEFAULT_SECONDS


def _signed(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:+d}"
    return f"{value:+.{digits}f}"


def _colour(delta: float | None, text: str) -> str:
    if delta is None:
        return text
    return f"[red]{text}[/]" if delta > 0 else f"[green]{text}[/]" if delta < 0 else text


def anatomy_table(doc: dict[str, Any], lines: bool = True) -> Table:
    """The rich table: one row per step, its figures and its delta over the step above.

    ``lines=False`` leaves out the lines-run columns, so the step titles keep room on a narrow terminal.
    """
    server = doc["settings"].get("server")
    table = Table(title=f"Anatomy of {doc['layer']}: {doc['request']['method']} {doc['request']['path']}")
    table.add_column("#", justify="right")
    # At least as wide as the longest step name, so a name is never cut mid-word (the titles wrap beneath).
    widest = max((len(r["step"]) for r in doc["steps"]), default=0)
    table.add_column("step: what it adds", overflow="fold", ratio=1, min_width=widest)
    for name in ("best µs", "Δ µs", "calls", "Δ calls", "lines", "Δ lines")[: 6 if lines else 4]:
        table.add_column(name, justify="right", no_wrap=True)
    if server:
        table.add_column("req/s", justify="right", no_wrap=True)
        table.add_column("p99 ms", justify="right", no_wrap=True)
    for r in doc["steps"]:
        label = f"[bold]{escape(r['step'])}[/]\n[dim]{escape(r['title'])}[/]"
        if r.get("problem"):
            table.add_row(str(r["index"]), label, f"[red]not measured: {escape(r['problem'])}[/]")
            continue
        c, d = r["counters"], r.get("delta") or {}
        us = r.get("us_per_request")
        cells = [
            str(r["index"]),
            label,
            f"{us['best']:.1f}" if us else "–",
            _colour(d.get("us"), _signed(d.get("us"))),
            f"{c['calls']}{'' if r.get('exact', True) else '≈'}",
            _signed(d.get("calls")),
        ]
        if lines:
            cells += [str(c["lines"]), _signed(d.get("lines"))]
        if server:
            s = r.get("server") or {}
            if s.get("problem"):
                cells += [f"[red]{escape(s['problem'])}[/]", ""]
            else:
                p99 = s.get("p99_us")
                cells += [f"{s.get('rps', 0):,.0f}", f"{p99 / 1000:.2f}" if p99 else "–"]
        table.add_row(*cells)
    return table


def _list_ladders(console: Console) -> None:
    from layercake.anatomy import get_ladder, ladders

    console.print("Anatomies (layercake anatomy LAYER):")
    for name in ladders():
        ladder = get_ladder(name)
        console.print(f"  [bold]{name:<10}[/] {len(ladder.steps):>2} steps  {escape(ladder.title)}", highlight=False)


@click.command("anatomy")
@click.argument("layer", required=False)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=lib_default_seconds(),
    show_default=True,
    help="Timing per step, in 5 windows interleaved with the other steps'.",
)
@click.option("--server", help="Also run each step on this real server: req/s and p99 from wrk (~3 s a step).")
@click.option("--json", "json_path", metavar="FILE", help="Write the results document (schema layercake.anatomy/1).")
@click.option("--markdown", "markdown_path", metavar="FILE", help="Write a markdown report.")
@click.option("--chart", "chart_path", metavar="FILE", help="Write the waterfall chart (PNG).")
@click.option("--out", "out_dir", metavar="DIR", help="Write LAYER.json, LAYER.md and LAYER.png into DIR.")
def anatomy(
    layer: str | None,
    seconds: float,
    server: str | None,
    json_path: str | None,
    markdown_path: str | None,
    chart_path: str | None,
    out_dir: str | None,
) -> None:
    """What each feature of LAYER costs per request: a ladder of variants, one feature per step.

    Every variant is a real small app (layers/LAYER/anatomy.py) answering the same request;
    each is checked and counted in a process of its own, then all are timed interleaved:
    CPU µs per request (the best batch; medians in the JSON), Python calls and lines run
    (deterministic), and the delta over the step above.  Ctrl-C keeps what was measured
    (exit 130).

    \b
    layercake anatomy                       # the ladders there are
    layercake anatomy fastapi               # 16 steps, 15-30 s
    layercake anatomy flask --out docs/anatomy
    layercake anatomy starlette --server uvicorn
    """
    from layercake import anatomy as lib

    # A pipe gets a wide table (rows are made to be read whole) unless COLUMNS says otherwise.
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120)
    if layer is None:
        _list_ladders(console)
        return
    ladder = lib.get_ladder(layer)  # an unknown name lists the choices
    if out_dir:
        json_path = json_path or str(Path(out_dir) / f"{layer}.json")
        markdown_path = markdown_path or str(Path(out_dir) / f"{layer}.md")
        chart_path = chart_path or str(Path(out_dir) / f"{layer}.png")
    n = len(ladder.steps)
    width = max(len(step.key) for step in ladder.steps)  # the step names' column
    console.print(
        f"{layer}: {n} steps, each checked and counted in its own process, then timed interleaved "
        f"(~{2 + n * (0.4 + seconds) + (n * 3 if server else 0):.0f} s on an idle machine)",
        highlight=False,
    )
    status = console.status("starting")

    def on_start(i: int, total: int, step: lib.Step) -> None:
        status.update(f"{i + 1}/{total} {step.key}")

    counted: list[dict[str, Any]] = []

    def on_row(row: dict[str, Any]) -> None:
        if row.get("problem"):
            console.print(f"  [red]{row['step']}: not measured: {escape(row['problem'])}[/]", highlight=False)
            return
        before = next((r for r in reversed(counted) if r.get("problem") is None), None)
        calls = row["counters"]["calls"]
        delta = f"{calls - before['counters']['calls']:+d}" if before else ""
        counted.append(row)
        console.print(f"  {row['index']:>2}/{n} {row['step']:<{width}} {calls:>5} calls {delta:>6}", highlight=False)

    def on_round(done: int, rounds: int) -> None:
        status.update(f"timing, interleaved: round {done + 1 if done < rounds else done}/{rounds}")

    with status:
        doc = lib.anatomy_document(
            layer, seconds, server, "layercake " + shlex.join(sys.argv[1:]), lib.Progress(on_start, on_row, on_round)
        )
    if doc["steps"]:
        console.print(anatomy_table(doc, lines=console.width >= 100))
    if any(not r.get("exact", True) for r in doc["steps"]):
        console.print(
            "[dim]≈: a worker thread takes part; the stdlib's calls (and the stdlib's and anyio's lines) "
            "can differ by a few between runs, every other package's calls are exact.[/]"
        )
    console.print(
        "[dim]best µs: CPU time of the fastest batch, in-process; medians are in --json/--markdown. "
        "calls and lines: one request, counted exactly.[/]"
    )
    if doc["headline"]:
        console.print(escape(doc["headline"]), highlight=False)
    written = []
    measured = [r for r in doc["steps"] if r.get("problem") is None]
    if json_path:
        written.append(lib.write_json(doc, json_path))
    if chart_path and measured:
        written.append(lib.chart(doc, chart_path))
    if markdown_path:
        path = Path(markdown_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        chart_name = None
        if chart_path and measured:
            chart_name = Path(chart_path).name if Path(chart_path).parent == path.parent else str(Path(chart_path))
        path.write_text(lib.markdown(doc, chart_name), encoding="utf-8")
        written.append(path)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    if not written and measured:
        console.print(f"[dim]--out DIR writes {layer}.json, {layer}.md and the waterfall chart {layer}.png[/]")
    if doc["interrupted"]:
        done, rounds = doc["settings"]["rounds_done"], doc["settings"]["interleaved_rounds"]
        if len(doc["steps"]) < n or not done:
            console.print(f"[yellow]interrupted: {len(doc['steps'])} of {n} steps counted, not timed[/]")
        else:
            console.print(f"[yellow]interrupted while timing: figures from {done} of {rounds} rounds[/]")
        raise SystemExit(130)
    failed = [r for r in doc["steps"] if r.get("problem")]
    if failed:
        raise LayercakeError(f"{len(failed)} step(s) did not give the ladder's answer and were not measured", 1)


COMMANDS = [anatomy]
