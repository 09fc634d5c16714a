"""``layercake layers``, ``verify`` and ``tour``: the first commands a newcomer runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from layercake import outputs, terminal
from layercake.contract import GROUPS, CaseResult, run_contract
from layercake.errors import LayercakeError
from layercake.ladder import TourRow, own_lines, tour_rows
from layers import LAYERS, get_layer

# The width of this invocation: COLUMNS, the terminal's, or 80 (layercake.terminal).
console: Console = terminal.stdout


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
    """List the layers: interface, the rung below, own lines of code, what each adds."""
    console.print("[bold]The ladder[/] (CONTRACT.md at every rung)")
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for col in ("layer", "interface", "built on", "own lines", "/docs"):
        table.add_column(col, justify="right" if col == "own lines" else "left", no_wrap=True)
    for layer in LAYERS.values():
        table.add_row(
            layer.name,
            layer.interface,
            (f"({layer.below})" if layer.standalone else layer.below) or f"({layer.interface.upper()} itself)",
            str(own_lines(layer)),
            "yes" if layer.docs else "-",
        )
    console.print(table)
    # What each adds is a sentence: under the table, beside its layer's name, wrapping
    # under itself, rather than squeezed into a sixth column a dozen characters wide.
    console.print("\n[bold]what each adds[/]")
    adds = Table.grid(padding=(0, 2))
    adds.add_column(no_wrap=True, style="bold")
    adds.add_column()
    for layer in LAYERS.values():
        adds.add_row(layer.name, escape(layer.description))
    console.print(adds)
    gaps = [(layer.name, case_id, why) for layer in LAYERS.values() for case_id, why in layer.gaps.items()]
    if gaps:  # what a layer cannot do on any server (Django's ASGI handler has no lifespan ...)
        console.print("\n[bold]known gaps[/] (registered with the layer, in layers/__init__.py)")
        for name, case_id, why in gaps:
            console.print(f"  [yellow]{name}: {case_id}[/]: {escape(why)}", highlight=False)


def _print_result(result: CaseResult, known: str | None = None) -> None:
    mark = "[green]pass[/]" if result.ok else ("[yellow]known gap[/]" if known else "[red]FAIL[/]")
    title = f"{result.case.group}/{result.case.id}"
    # The case id is the name a person greps for; the title may wrap under it, never cut it.
    console.print(f"  {mark}  {title}  [dim]{escape(result.case.title)}[/]", highlight=False)
    if not result.ok:
        console.print(f"        [{'yellow' if known else 'red'}]{escape(result.detail)}[/]", highlight=False)
        if known:
            console.print(f"        [yellow]known gap ({escape(known)})[/]", highlight=False)


@click.command("verify")
@click.argument("layer")
@click.option("--server", "server", default=None, help="Serve the layer on this server and check over real HTTP.")
@click.option("--group", "groups", multiple=True, type=click.Choice(GROUPS), help="Only these case groups.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on known gaps too (cases the registry says this server or its bridge cannot pass).",
)
def verify_cmd(layer: str, server: str | None, groups: tuple[str, ...], json_file: Path | None, strict: bool) -> None:
    """Run every contract case against LAYER; exit 0 when every case passes or is a known gap.

    Without --server the app is driven in-process (WSGI through wsgiref.validate, ASGI
    with lifespan and WebSocket); with --server it is served on a free loopback port.
    A case the registry records as a gap of that server or of its bridge (the same list
    `layercake grid` explains) is reported as "known gap (why)" and does not fail the
    run unless --strict is given.
    """
    spec = get_layer(layer)
    outputs.prepare(json_file)
    # In-process there is no server: only the layer's own gaps (layers/__init__.py) are known.
    known: Callable[[str], str | None] = lambda case_id: spec.gaps.get(case_id)  # noqa: E731

    def report(result: CaseResult) -> None:
        _print_result(result, None if result.ok else known(result.case.id))

    if server is None:
        console.print(f"[bold]{spec.name}[/] in-process ({spec.interface.upper()}, no socket)")
        with layer_logs_collected() as records:
            results = run_contract(None, spec, groups or None, on_result=report)
        if records:
            console.print(
                f"  [dim]the layer logged {len(records)} error(s) with tracebacks, as the contract asks "
                f"(GET /error, refused uploads): {escape('; '.join(sorted({r.getMessage() for r in records})))}[/]",
                highlight=False,
            )
    else:
        from layercake.grid import CONTRACT_TIMEOUT, known_gap
        from servers.registry import ServerOptions, get_server
        from servers.supervise import start_server

        server_spec = get_server(server)
        bridge = server_spec.bridge_for(spec.interface)

        def known(case_id: str) -> str | None:
            return known_gap(server_spec, bridge, case_id, spec)

        with start_server(server_spec, spec, ServerOptions(port=0)) as running:
            via = f" through the {running.bridge} bridge" if running.bridge else ""
            console.print(f"[bold]{spec.name}[/] on [bold]{server}[/]{via} at {running.url}")
            console.print(f"  [dim]$ {escape(running.native_command)}[/]", highlight=False)
            slow = [c for c in server_spec.gaps if "timeout" in server_spec.gaps[c]]
            if slow:
                console.print(
                    f"  [dim]{len(slow)} known gap(s) wait out a {CONTRACT_TIMEOUT:g} s timeout each: "
                    f"{', '.join(slow)}[/]",
                    highlight=False,
                )
            # On a terminal, a live line names the case being waited on (a pipe has a line per case).
            from layercake.contract import cases_for
            from layercake.progress import Steps

            planned = cases_for(spec, groups or None)
            steps = Steps(len(planned), "cases", console=terminal.console(stderr=True), keeps=False)

            def live(result: CaseResult) -> None:
                report(result)
                if steps.live:
                    index = planned.index(result.case) + 1 if result.case in planned else steps.done + 1
                    following = f"{planned[index].group}/{planned[index].id}" if index < len(planned) else "done"
                    steps.update(following, index, len(planned))

            if steps.live:
                with steps:  # a Ctrl-C here still ends the run (re-raised below): verify keeps nothing partial
                    steps.status(f"{planned[0].group}/{planned[0].id}" if planned else "")
                    results = run_contract(running.url, spec, groups or None, on_result=live, timeout=CONTRACT_TIMEOUT)
                if steps.interrupted:
                    raise KeyboardInterrupt
            else:
                results = run_contract(running.url, spec, groups or None, on_result=live, timeout=CONTRACT_TIMEOUT)
    passed = sum(r.ok for r in results)
    gaps = {r.case.id: why for r in results if not r.ok and (why := known(r.case.id))}
    failed = len(results) - passed - len(gaps)
    colour = "green" if failed == 0 and (not gaps or not strict) else "red"
    summary = f"{passed}/{len(results)} contract cases passed"
    if gaps:
        summary += f", {len(gaps)} known gap(s)" + (" (--strict: they count as failures)" if strict else "")
    if failed:
        summary += f", {failed} failed"
    console.print(f"[{colour}]{summary}[/]")
    if json_file:
        json_file.write_text(
            json.dumps(
                {
                    "layer": spec.name,
                    "server": server or "in-process",
                    "strict": strict,
                    "results": [
                        r.as_dict() | ({"known_gap": gaps[r.case.id]} if r.case.id in gaps else {}) for r in results
                    ],
                },
                indent=2,
            )
        )
    if failed:
        raise LayercakeError(f"{failed} contract case(s) failed for {spec.name}", exit_code=1)
    if gaps and strict:
        raise LayercakeError(f"{len(gaps)} known gap(s) for {spec.name} on {server} (--strict)", exit_code=1)


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
    from layercake.bench.environment import describe
    from layercake.figures import machine_of

    # Live figures, and said to be: read, loc and the site quote stored ones, measured
    # elsewhere and earlier, and a reader comparing the two must know which is which.
    console.print(
        f"[bold]The ladder, in-process[/] -- measured live, just now, on this machine ({machine_of(describe())})"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    terminal.key_column(table, "layer")
    for col in ("own\nlines", "contract", "µs /\nrequest", "×\nbare", "calls", "lines\nrun"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        ok = row.passed == row.total
        only_gaps = all(f.case.id in row.layer.gaps for f in row.failures)
        table.add_row(
            row.layer.name,
            str(row.own_lines),
            f"[{'green' if ok else 'yellow' if only_gaps else 'red'}]{row.passed}/{row.total}[/]",
            f"{row.us_per_request:.1f}",
            f"{row.ratio_to_bare:.2f}×",
            str(row.calls),
            str(row.lines_run),
        )
    console.print(table)
    console.print("[bold]where the calls go[/] (Python calls per request, by package)")
    where = Table.grid(padding=(0, 2))
    where.add_column(no_wrap=True, style="bold")
    where.add_column()
    for row in rows:
        where.add_row(row.layer.name, _top_packages(row.calls_by_package))
    console.print(where)
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
        console.print(f"  [bold]{command}[/]", highlight=False, soft_wrap=True)
        console.print(Padding(why, (0, 0, 0, 6), expand=False), highlight=False)
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
    ("layercake anatomy fastapi", "what each FastAPI feature costs a request, one feature per step (also flask, ...)"),
    # The tour ends on the trace: the one command that shows *where* the cost above goes.
    (
        "layercake trace flask --server scratch-asgi GET /items/1 --html trace.html",
        "one request from bytes to handler and back: our parser, the a2wsgi bridge, the hop to a worker "
        "thread, Flask and Werkzeug, coloured by layer",
    ),
)


COMMANDS = [layers_cmd, verify_cmd, tour_cmd]
