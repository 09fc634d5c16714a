"""``layercake bench``: what each layer and each server costs, side by side.

A thin command over :mod:`layercake.bench`: it parses options, shows a progress bar
and the plan's estimated duration, and writes what the library returns (JSON,
markdown, charts).  Methodology and the JSON schema: docs/bench.md.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from layercake.errors import LayercakeError


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise LayercakeError(
            f"--concurrency takes comma-separated integers, e.g. 1,16,64,256 (got {value!r})", 2
        ) from None


def _command_line() -> str:
    """What was typed, recorded in the results so a figure can be reproduced."""
    return "layercake " + shlex.join(sys.argv[1:])


def _write_outputs(
    console: Console, doc: dict[str, Any], json_path: str | None, markdown_path: str | None, charts_dir: str | None
) -> None:
    from layercake.bench import report

    if json_path:
        console.print(f"wrote {report.write_json(doc, json_path)}")
    if markdown_path:
        path = Path(markdown_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.markdown(doc), encoding="utf-8")
        console.print(f"wrote {path}")
    if charts_dir:
        for path in report.charts(doc, charts_dir):
            console.print(f"wrote {path}")


@click.command()
@click.option("--layers", help="Comma-separated layers (default: all of them).")
@click.option(
    "--servers",
    help="Comma-separated servers instead of the reference ones (uvicorn httptools+uvloop for "
    "ASGI, gunicorn-gthread -w1 --threads 8 for WSGI); other-interface layers go through a bridge.",
)
@click.option(
    "--endpoints",
    default="plaintext,json,item,create",
    show_default=True,
    help="Comma-separated: plaintext, json, item, create (slow is for --experiment slow).",
)
@click.option(
    "--concurrency",
    help="Comma-separated connection counts, e.g. 1,16,64,256 (default: 64; the slow experiment: 1,8,32,128,256).",
)
@click.option(
    "--duration", type=int, default=1, show_default=True, help="Seconds per run (whole seconds: wrk's resolution)."
)
@click.option(
    "--repeat", type=int, default=3, show_default=True, help="Interleaved rounds; medians and min–max are over these."
)
@click.option("--workers", type=int, help="Worker processes for every server (default: the server's own).")
@click.option("--http", help="HTTP parser for the servers that offer a choice (e.g. h11, httptools).")
@click.option("--loop", help="Event loop for the servers that offer a choice (asyncio, uvloop).")
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "builtin"]),
    default="auto",
    show_default=True,
    help="wrk when installed; builtin is a Python generator with a measured ceiling.",
)
@click.option("--floor/--no-floor", default=True, show_default=True, help="Include the fixed-bytes asyncio floor.")
@click.option("--peers", is_flag=True, help="Add a Node.js http server (plaintext, json) when node is installed.")
@click.option("--full", is_flag=True, help="The whole layer × server matrix (states its duration first).")
@click.option("--baseline", help="Target id for the second ratio column (default: floor), e.g. uvicorn/bare_asgi.")
@click.option("--no-pin", is_flag=True, help="Do not pin the server and the load generator to separate CPUs.")
@click.option(
    "--in-process",
    "in_process",
    is_flag=True,
    help="No sockets: µs per request and deterministic counters (Python/C calls, lines, allocation) by package.",
)
@click.option(
    "--bridged",
    is_flag=True,
    help="--in-process: also each layer through its a2wsgi bridge (flask@asgi, fastapi@wsgi, ...).",
)
@click.option(
    "--seconds", type=float, default=0.5, show_default=True, help="--in-process: timing per layer and endpoint."
)
@click.option(
    "--experiment", type=click.Choice(["slow"]), help="slow: /slow?ms=50 at rising concurrency, WSGI threads vs ASGI."
)
@click.option("--json", "json_path", metavar="FILE", help="Write the results document (schema: docs/bench.md).")
@click.option("--markdown", "markdown_path", metavar="FILE", help="Write a markdown report.")
@click.option("--charts", "charts_dir", metavar="DIR", help="Write PNG charts into DIR.")
@click.option("--compare", nargs=2, metavar="A.json B.json", help="Show the change between two results files.")
def bench(
    layers: str | None,
    servers: str | None,
    endpoints: str,
    concurrency: str | None,
    duration: int,
    repeat: int,
    workers: int | None,
    http: str | None,
    loop: str | None,
    generator: str,
    floor: bool,
    peers: bool,
    full: bool,
    baseline: str | None,
    no_pin: bool,
    in_process: bool,
    bridged: bool,
    seconds: float,
    experiment: str | None,
    json_path: str | None,
    markdown_path: str | None,
    charts_dir: str | None,
    compare: tuple[str, str] | None,
) -> None:
    """Benchmark the layers over real sockets (the ladder), in-process, or as an experiment.

    \b
    layercake bench                              # the ladder: each layer on its reference server + the floor
    layercake bench --in-process                 # µs and calls per request, by package, no socket
    layercake bench --experiment slow            # sync vs async: /slow?ms=50 at rising concurrency
    layercake bench --peers --endpoints plaintext,json
    layercake bench --compare old.json new.json
    """
    from layercake.bench import report

    # A pipe gets a wide table rather than rich's 80 columns: the rows are made to be read whole.
    console = Console(width=None if sys.stdout.isatty() else 150)
    if compare:
        table, warnings = report.compare(report.load(compare[0]), report.load(compare[1]))
        for w in warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
        console.print(table)
        return
    if in_process:
        # Options that belong to the socket benchmarks would be silently ignored here.
        ignored = [
            flag
            for flag, given in (
                ("--experiment", experiment),
                ("--servers", servers),
                ("--peers", peers),
                ("--full", full),
                ("--concurrency", concurrency),
            )
            if given
        ]
        if ignored:
            raise LayercakeError(f"--in-process measures without sockets and takes no {', '.join(ignored)}", 2)
        if seconds <= 0:
            raise LayercakeError("--seconds must be positive", 2)
        from layercake.bench.endpoints import get_endpoint
        from layers import get_layer

        for name in _names(layers) or []:  # before the banner, not after it
            get_layer(name.partition("@")[0])
        for name in _names(endpoints) or []:
            get_endpoint(name)
    elif bridged:
        raise LayercakeError("--bridged goes with --in-process", 2)
    command = _command_line()
    layer_names = _names(layers)
    endpoint_names = _names(endpoints) or []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total or None)

        if in_process:
            from layercake.bench.costs import inprocess_document

            console.print(
                f"in-process: {len(layer_names or []) or 'all'} layers × {len(endpoint_names)} endpoints, "
                f"about {seconds:g} s each plus ~1 s of imports per layer"
            )
            doc = inprocess_document(layer_names, endpoint_names, seconds, command, progress, bridged=bridged)
        else:
            from layercake.bench import runner

            config = runner.BenchConfig(
                layers=layer_names,
                servers=_names(servers),
                endpoints=endpoint_names,
                concurrency=_ints(concurrency or "64"),
                duration=duration,
                repeat=repeat,
                workers=workers,
                http=http,
                loop=loop,
                generator=generator,
                floor=floor,
                peers=peers,
                full=full,
                baseline=baseline,
                pin=not no_pin,
            )
            if experiment == "slow":
                from layercake.bench import experiments

                # --concurrency not given: the experiment's own sweep.
                config = experiments.slow_config(config, sweep=concurrency is not None)
            config.validate()
            targets = runner.plan_targets(config)
            runner.check_baseline(targets, config)
            cells = runner.plan_cells(targets, config)
            estimate = runner.estimate_seconds(targets, cells, config)
            console.print(
                f"plan: {len(targets)} targets, {len(cells)} cells × {config.repeat} rounds × "
                f"{config.duration} s -- estimated {estimate / 60:.1f} min"
                + (" (over the 3-minute default budget)" if estimate > runner.DEFAULT_BUDGET and not full else "")
            )
            if experiment == "slow":
                doc = experiments.run_slow(config, progress, command)
            else:
                doc = runner.run_bench(config, progress, command)
    if doc["kind"] == "in_process":
        console.print(report.inprocess_table(doc))
        for failure in doc.get("failures", []):
            console.print(f"[bold red]not measured:[/] {escape(failure)}")
    else:
        console.print(report.ladder_table(doc))
        if doc["kind"] == "ladder" and len(doc["settings"]["endpoints"]) > 1 and doc["results"]:
            console.print(report.glance_table(doc))
        console.print(escape(report.generator_line(doc)))
        for note in report.verification_notes(doc):
            console.print(f"[yellow]{escape(note)}[/]")
        flagged = [r for r in doc["results"] if r["flagged"]]
        if flagged:
            console.print(
                f"[bold red]{len(flagged)} result(s) had socket errors or non-2xx responses (⚠): "
                "do not trust those rows[/]"
            )
    console.print(escape(report.environment_line(doc)))
    _write_outputs(console, doc, json_path, markdown_path, charts_dir)
    # Every layer target failed to start (a server not installed, say) or every layer failed
    # in-process: a table with at most the floor in it must not exit 0 for a script to read
    # as a benchmark.
    if doc["kind"] == "in_process":
        measured = bool(doc.get("in_process"))
    else:
        layer_ids = {t["id"] for t in doc.get("targets", []) if t.get("kind") == "layer"}
        measured = any(r["target"] in layer_ids for r in doc["results"]) if layer_ids else bool(doc["results"])
    if not measured:
        raise LayercakeError("no layer was measured (see why above)", 1)


COMMANDS = [bench]
