"""``layercake layers``, ``verify`` and ``tour``: the first commands a newcomer runs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from layercake.contract import GROUPS, CaseResult, run_contract
from layercake.errors import LayercakeError
from layercake.ladder import TourRow, own_lines, tour_rows
from layers import LAYERS, get_layer

# Off a terminal (CI logs, pipes) rich would assume 80 columns and fold the tables.
console = Console(width=None if sys.stdout.isatty() else 140)


@contextmanager
def layer_logs_collected() -> Iterator[list[logging.LogRecord]]:
    """Hold the layers' log records instead of printing them.

    The contract makes layers fail on purpose (``GET /error``, an oversized upload),
    and each logs a traceback, as it should; interleaved with a pass/fail list those
    tracebacks only hide the result.  The caller reports how many there were.
    """
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    # Our layers log on layercake.layers.<name>; Django logs on its own django.request.
    names = {"layercake.layers"} | {layer.logger for layer in LAYERS.values() if layer.log_name}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    handler, propagates = _Keep(), [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield records
    finally:
        for logger, propagate in zip(loggers, propagates, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate


@click.command("layers")
def layers_cmd() -> None:
    """List the layers: interface, the rung below, own lines of code, known gaps, what each adds."""
    table = Table(title="The ladder (CONTRACT.md at every rung)")
    for col in ("layer", "interface", "built on", "own lines", "/docs", "gaps", "what it adds"):
        table.add_column(col, justify="right" if col == "own lines" else "left")
    for layer in LAYERS.values():
        table.add_row(
            layer.name,
            layer.interface,
            (f"({layer.below})" if layer.standalone else layer.below) or f"({layer.interface.upper()} itself)",
            str(own_lines(layer)),
            "yes" if layer.docs else "-",
            ", ".join(layer.gaps) or "-",
            layer.description,
        )
    console.print(table)
    console.print("[dim](name): the rung below on the ladder, read beside it; not code the layer is built on[/]")
    for layer in LAYERS.values():
        for case_id, why in layer.gaps.items():
            console.print(f"  [yellow]{layer.name}: {case_id}[/]: {why}", highlight=False)


def _print_result(result: CaseResult, gaps: dict[str, str] | None = None) -> None:
    gap = (gaps or {}).get(result.case.id)
    mark = "[green]pass[/]" if result.ok else "[yellow]gap [/]" if gap else "[red]FAIL[/]"
    console.print(f"  {mark}  {result.case.group:<9} {result.case.id:<20} {result.case.title}", soft_wrap=True)
    if not result.ok:
        console.print(f"        [{'yellow' if gap else 'red'}]{result.detail}[/]", highlight=False)
        if gap:
            console.print(f"        [yellow]known gap: {gap}[/]", highlight=False)


@click.command("verify")
@click.argument("layer")
@click.option("--server", "server", default=None, help="Serve the layer on this server and check over real HTTP.")
@click.option("--group", "groups", multiple=True, type=click.Choice(GROUPS), help="Only these case groups.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
def verify_cmd(layer: str, server: str | None, groups: tuple[str, ...], json_file: Path | None) -> None:
    """Run every contract case against LAYER; exit 0 only if all pass.

    Without --server the app is driven in-process (WSGI through wsgiref.validate, ASGI
    with lifespan and WebSocket); with --server it is served on a free loopback port.
    """
    spec = get_layer(layer)
    if server is None:
        console.print(f"[bold]{spec.name}[/] in-process ({spec.interface.upper()}, no socket)")
        with layer_logs_collected() as records:
            results = run_contract(None, spec, groups or None, on_result=lambda r: _print_result(r, spec.gaps))
        if records:
            console.print(
                f"  [dim]the layer logged {len(records)} error(s) with tracebacks, as the contract asks "
                f"(GET /error, refused uploads): {'; '.join(sorted({r.getMessage() for r in records}))}[/]",
                highlight=False,
            )
    else:
        from servers.registry import ServerOptions
        from servers.supervise import start_server

        with start_server(server, spec.name, ServerOptions(port=0)) as running:
            bridge = f" through the {running.bridge} bridge" if running.bridge else ""
            console.print(f"[bold]{spec.name}[/] on [bold]{server}[/]{bridge} at {running.url}")
            console.print(f"  [dim]$ {running.native_command}[/]", highlight=False)
            results = run_contract(running.url, spec, groups or None, on_result=lambda r: _print_result(r, spec.gaps))
    passed = sum(r.ok for r in results)
    known = [r for r in results if not r.ok and r.case.id in spec.gaps]
    colour = "green" if passed == len(results) else "yellow" if passed + len(known) == len(results) else "red"
    gaps_note = f" ({len(known)} known gap(s) of {spec.name}, registered in layers/__init__.py)" if known else ""
    console.print(f"[{colour}]{passed}/{len(results)} contract cases passed{gaps_note}[/]")
    if json_file:
        json_file.write_text(
            json.dumps(
                {"layer": spec.name, "server": server or "in-process", "results": [r.as_dict() for r in results]},
                indent=2,
            )
        )
    if passed + len(known) != len(results):
        raise LayercakeError(
            f"{len(results) - passed - len(known)} contract case(s) failed for {spec.name}", exit_code=1
        )


@click.command("tour")
@click.option(
    "--seconds",
    default=0.3,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Timing budget per layer for the in-process cost.",
)
def tour_cmd(seconds: float) -> None:
    """The five-minute introduction: verify every layer and show what each costs."""
    console.rule("[bold]layercake tour")
    console.print(
        f"{len(LAYERS)} layers implement one contract (CONTRACT.md). Each is checked in-process, then measured "
        "on GET /json with no socket in the way, so the cost is the framework's own: microseconds "
        "(median of short batches) and the Python calls and distinct source lines one request runs "
        "(deterministic counts).\n"
    )
    rows: list[TourRow] = []
    with console.status("verifying and timing the layers…"), layer_logs_collected():
        for row in tour_rows(seconds_per_layer=seconds):
            rows.append(row)
            console.print(
                f"  {row.layer.name:<10} {row.passed}/{row.total} cases, {row.us_per_request:7.1f} µs, "
                f"{row.calls} calls per request"
            )
    table = Table(title="The ladder, in-process")
    for col in (
        "layer",
        "interface",
        "own lines",
        "contract",
        "µs / request",
        "× bare",
        "calls",
        "lines run",
        "where the calls go",
    ):
        table.add_column(col, justify="left" if col in ("layer", "interface", "where the calls go") else "right")
    for row in rows:
        ok = row.passed == row.total
        only_gaps = all(f.case.id in row.layer.gaps for f in row.failures)
        table.add_row(
            row.layer.name,
            row.layer.interface,
            str(row.own_lines),
            f"[{'green' if ok else 'yellow' if only_gaps else 'red'}]{row.passed}/{row.total}[/]",
            f"{row.us_per_request:.1f}",
            f"{row.ratio_to_bare:.2f}×",
            str(row.calls),
            str(row.lines_run),
            _top_packages(row.calls_by_package),
        )
    console.print(table)
    console.print(
        "[dim]Packages: layer = the layer's own code and layers/shared; driver = the stand-in server "
        "that builds the environ or scope and calls the app; stdlib = Python's own library.[/]"
    )
    failed = [r for r in rows if any(f.case.id not in r.layer.gaps for f in r.failures)]
    for row in rows:
        for res in row.failures:
            gap = row.layer.gaps.get(res.case.id)
            text = f"known gap -- {gap}" if gap else res.detail
            console.print(
                f"  [{'yellow' if gap else 'red'}]{row.layer.name}: {res.case.id}: {text}[/]", highlight=False
            )
    console.print("\nWhere to go next:")
    for command, why in NEXT_STEPS:
        console.print(f"  [bold]{command}[/]\n      {why}", highlight=False)
    if failed:
        raise LayercakeError(f"{len(failed)} layer(s) did not pass the whole contract", exit_code=1)


def _top_packages(calls: dict[str, int], keep: int = 3) -> str:
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:keep]
    return ", ".join(f"{name} {n}" for name, n in top)


NEXT_STEPS = (
    ("layercake verify fastapi --server uvicorn", "the same contract over real HTTP, on a server people deploy"),
    ("layercake read --diff starlette fastapi", "what FastAPI adds, handler by handler, side by side"),
    (
        "layercake bench",
        "the ladder over real sockets (about 2 minutes): each layer on its reference server, wrk on the other CPU",
    ),
    ("layercake grid", "every layer on every installed server, through bridges where the interfaces differ"),
    # The tour ends on the trace: the one command that shows *where* the cost above goes.
    (
        "layercake trace flask --server scratch-asgi GET /items/1 --html trace.html",
        "one request from bytes to handler and back: our parser, the a2wsgi bridge, the hop to a worker "
        "thread, Flask and Werkzeug, coloured by layer",
    ),
)


COMMANDS = [layers_cmd, verify_cmd, tour_cmd]
