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

from layercake import outputs, terminal
from layercake.errors import LayercakeError
from layercake.progress import Steps


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


def check_server_flags(targets: list[Any], http: str | None, loop: str | None, workers: int | None) -> None:
    """Refuse (exit 2, before anything starts) a --http, --loop or --workers no server of the run can take.

    ``--http``/``--loop`` apply to the servers that offer that choice and leave the others
    alone (so ``--servers scratch-asgi,uvicorn --http h11`` compares equal parsers), which
    used to mean a value *no* server offers -- ``--http bogus`` -- was silently dropped and
    the run measured the defaults.
    """
    from servers.registry import SERVERS

    specs = list({t.server: SERVERS[t.server] for t in targets if t.server in SERVERS}.values())
    names = ", ".join(s.name for s in specs) or "none"
    for flag, value, field in (("--http", http, "http_parsers"), ("--loop", loop, "loops")):
        if value is None:
            continue
        takers = [s for s in specs if getattr(s.capabilities, field)]
        if not takers:
            raise LayercakeError(f"{flag} {value}: none of this run's servers ({names}) has a {flag} choice", 2)
        if not any(value in getattr(s.capabilities, field) for s in takers):
            offers = "; ".join(f"{s.name}: {' | '.join(getattr(s.capabilities, field))}" for s in takers)
            raise LayercakeError(f"{flag} {value!r} is not a choice of any server in this run ({offers})", 2)
    if workers is not None:
        if workers < 1:
            raise LayercakeError("--workers must be at least 1", 2)
        single = [s.name for s in specs if not s.capabilities.workers]
        if workers > 1 and single:
            raise LayercakeError(
                f"--workers {workers}: {', '.join(single)} runs a single process and has no --workers", 2
            )


def _write_outputs(
    console: Console,
    doc: dict[str, Any],
    json_path: str | None,
    markdown_path: str | None,
    charts_dir: str | None,
    note: str = "",
) -> None:
    from layercake.bench import report

    if json_path:
        console.print(f"wrote {report.write_json(doc, json_path)}")
    if markdown_path:
        path = Path(markdown_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(note + report.markdown(doc), encoding="utf-8")
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
@click.option(
    "--peers",
    is_flag=True,
    help="Add the Node.js http and Go net/http peers (plaintext, json); one whose program is missing is skipped, "
    "with the reason.",
)
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
    "--app",
    "app",
    metavar="MODULE:ATTR",
    help="--in-process: your own WSGI or ASGI application instead of the layers (requests from --path).",
)
@click.option("--interface", type=click.Choice(["wsgi", "asgi"]), help="--app's interface, when it cannot be told.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="'[METHOD] /PATH'",
    help="--app: a request to measure (repeatable; default GET /).",
)
@click.option(
    "--experiment",
    type=click.Choice(["slow", "parsers", "blocking", "threadpool", "cpu", "capacity"]),
    help="slow: /slow?ms=50 at rising concurrency, WSGI threads vs ASGI; parsers: h11 | httptools x asyncio | "
    "uvloop on our servers and uvicorn, beside waitress, gunicorn and granian, plus what each parser costs in "
    "process; blocking: time.sleep in async def vs the right ways, timed by a bystander; threadpool: a def "
    "endpoint from 1 to 128 in flight (anyio's 40 tokens); cpu: CPU-bound work on threads, the loop, 2 processes; "
    "capacity: N idle connections held per server (--concurrency: the Ns). See docs/bench/experiment-*.md.",
)
@click.option(
    "--smoke", is_flag=True, help="--experiment blocking|threadpool|cpu|capacity: a few points in seconds (a check)."
)
@click.option(
    "--wait-ms",
    type=click.IntRange(1, 10_000),
    help="--experiment blocking|threadpool: how long each blocking request waits (default 50).",
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
    app: str | None,
    interface: str | None,
    paths: tuple[str, ...],
    experiment: str | None,
    smoke: bool,
    wait_ms: int | None,
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
    layercake bench --experiment threadpool      # also blocking, cpu, capacity: the sync-vs-async lab
    layercake bench --peers --endpoints plaintext,json
    layercake bench --compare old.json new.json
    """
    from layercake.bench import report

    if app is not None or interface is not None or paths:
        _bench_app(app, interface, paths, in_process, layers, endpoints, seconds, json_path, markdown_path, charts_dir)
        return
    # COLUMNS, the terminal's width, or 80 off a terminal (layercake.terminal).
    console = terminal.console()
    if compare:
        table, warnings = report.compare(report.load(compare[0]), report.load(compare[1]))
        for w in warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
        console.print(terminal.fit(table, console.width))
        return
    if experiment in ("blocking", "threadpool", "cpu", "capacity"):
        if in_process:
            raise LayercakeError(f"--experiment {experiment} measures over sockets and takes no --in-process", 2)
        _run_lab(
            console,
            experiment,
            servers,
            concurrency,
            duration,
            smoke,
            wait_ms,
            repeat,
            no_pin,
            generator,
            json_path,
            markdown_path,
            charts_dir,
        )
        return
    if smoke or wait_ms:
        flag = "--smoke" if smoke else "--wait-ms"
        raise LayercakeError(f"{flag} goes with --experiment blocking, threadpool, cpu or capacity", 2)
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
                ("--http", http),
                ("--loop", loop),
                ("--workers", workers),
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
    outputs.prepare(json_path, markdown_path, directories=(charts_dir,))
    steps = Steps(None, "runs" if not in_process else "layers", console=terminal.console(stderr=True))
    doc: dict[str, Any] | None = None
    with steps:
        progress = steps.update
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
            from layercake.bench import experiments

            if experiment == "slow":
                # --concurrency not given: the experiment's own sweep.
                config = experiments.slow_config(config, sweep=concurrency is not None)
            elif experiment == "parsers":
                config = experiments.parsers_config(config)
            config.validate()
            targets = runner.plan_targets(config)
            check_server_flags(targets, http, loop, workers)
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
            elif experiment == "parsers":
                doc = experiments.run_parsers(config, progress, command)
            else:
                doc = runner.run_bench(config, progress, command)
    if doc is None:  # Ctrl-C before the library had anything to keep (starting, planning)
        steps.finish()
        return
    if doc["kind"] == "in_process":
        console.print(terminal.fit(report.inprocess_table(doc), console.width))
        for failure in doc.get("failures", []):
            console.print(f"[bold red]not measured:[/] {escape(failure)}")
    else:
        console.print(terminal.fit(report.ladder_table(doc), console.width))
        if doc["kind"] == "ladder" and len(doc["settings"]["endpoints"]) > 1 and doc["results"]:
            console.print(terminal.fit(report.glance_table(doc), console.width))
        console.print(escape(report.generator_line(doc)))
        if doc.get("parser_costs"):
            from layercake.bench.parsers import ParserCost, render

            console.print(escape(render([ParserCost(**c) for c in doc["parser_costs"]])))
        for note in report.verification_notes(doc):
            console.print(f"[yellow]{escape(note)}[/]")
        flagged = [r for r in doc["results"] if r["flagged"]]
        if flagged:
            console.print(
                f"[bold red]{len(flagged)} result(s) had socket errors or non-2xx responses (⚠): "
                "do not trust those rows[/]"
            )
    console.print(escape(report.environment_line(doc)))
    if doc.get("partial"):  # Ctrl-C: the library kept what was measured and said so in the document
        steps.interrupted = True
        steps.done, steps.total = doc["partial"]["done"], doc["partial"]["total"]
        console.print(f"[yellow]partial:[/] interrupted after {steps.done} of {steps.total} {steps.what}")
    _write_outputs(console, doc, json_path, markdown_path, charts_dir, steps.markdown_note())
    written = [p for p in (json_path, markdown_path) if p]
    steps.finish(f"what was measured is in {' and '.join(written)}" if written else "")
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


def _bench_app(
    app: str | None,
    interface: str | None,
    paths: tuple[str, ...],
    in_process: bool,
    layers: str | None,
    endpoints: str,
    seconds: float,
    json_path: str | None,
    markdown_path: str | None,
    charts_dir: str | None,
) -> None:
    """``bench --in-process --app MODULE:ATTR [--path ...]``: a user's app, measured like a layer."""
    from layercake.apps import load_app
    from layercake.bench import report
    from layercake.bench.costs import app_document, app_endpoint

    if app is None:
        raise LayercakeError("--interface and --path go with --app MODULE:ATTR", 2)
    if not in_process:
        raise LayercakeError(
            "--app is measured in-process: add --in-process (to load it over sockets, run "
            "`layercake serve --app ...` and point wrk at it)",
            2,
        )
    if layers:
        raise LayercakeError("give --layers or --app, not both", 2)
    if endpoints != "plaintext,json,item,create":
        raise LayercakeError("--endpoints are the contract's routes; for --app name requests with --path", 2)
    if seconds <= 0:
        raise LayercakeError("--seconds must be positive", 2)
    for path in paths:
        app_endpoint(path)  # a malformed --path is refused before anything runs
    target = load_app(app, interface)
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(f"in-process: {target.name} ({target.interface}: {target.detected}), {len(paths) or 1} request(s)")
    doc = app_document(target, list(paths), seconds, _command_line())
    console.print(report.inprocess_table(doc))
    for failure in doc.get("failures", []):
        console.print(f"[bold red]not measured:[/] {escape(failure)}")
    console.print(escape(report.environment_line(doc)))
    _write_outputs(console, doc, json_path, markdown_path, charts_dir)
    if not doc["in_process"]:
        raise LayercakeError("the app was not measured (see why above)", 1)


def _run_lab(
    console: Console,
    name: str,
    servers: str | None,
    concurrency: str | None,
    duration: int,
    smoke: bool,
    wait_ms: int | None,
    repeat: int,
    no_pin: bool,
    generator: str,
    json_path: str | None,
    markdown_path: str | None,
    charts_dir: str | None,
) -> None:
    """One experiment of the sync-vs-async lab (layercake/bench/experiments/): bar, table, files; Ctrl-C keeps."""
    from layercake.bench import experiments

    # --duration's default (1) is the ladder's: an experiment uses its own unless one is given.
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("duration") != click.core.ParameterSource.DEFAULT
    rounds = repeat if ctx.get_parameter_source("repeat") != click.core.ParameterSource.DEFAULT else None
    config = experiments.LabConfig(
        duration=float(duration) if given else None,
        concurrency=_ints(concurrency) if concurrency else None,
        servers=_names(servers),
        smoke=smoke,
        pin=not no_pin,
        generator=generator,
        wait_ms=wait_ms,
        rounds=rounds,
    )
    if config.concurrency is not None and min(config.concurrency) < 1:
        raise LayercakeError("--concurrency takes positive numbers", 2)
    mod = experiments.module(name)
    mod.plan(config)  # bad --servers fail here, before the bar
    console.print(
        f"experiment {name}: {experiments.LAB[name][1]}" + (" (smoke: a check, not a measurement)" if smoke else "")
    )
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
            bar.update(task, completed=done, total=total or None, description=what or None)  # None: unchanged

        # SIGTERM (a CI timeout, `kill`) ends the run as Ctrl-C does: the servers are stopped, what was
        # measured is written and marked partial.  Without this, Python dies at once and the servers --
        # each in its own session -- would outlive the command.
        import signal

        def terminated(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            doc = experiments.run_lab(name, config, progress, _command_line())
        finally:
            signal.signal(signal.SIGTERM, previous)
    console.print(mod.table(doc))
    for note in doc["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for skipped in doc.get("skipped", []):
        console.print(f"[yellow]not tried:[/] {escape(skipped)}")
    from layercake.bench import report

    console.print(escape(report.environment_line(doc)))
    experiments.write_outputs(doc, json_path, markdown_path, charts_dir, lambda line: console.print(escape(line)))
    if doc["partial"]:
        raise LayercakeError(f"interrupted: kept the {len(doc['points'])} point(s) measured (marked partial)", 130)
    if not doc["points"]:
        raise LayercakeError("nothing was measured (see the notes above)", 1)


COMMANDS = [bench]
