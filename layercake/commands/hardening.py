"""``layercake probe`` (the raw-request corpus against servers) and ``layercake soak``.

Thin on purpose: the corpus is :mod:`layercake.corpus`, the probe client
:mod:`layercake.probe`, the load and the /proc measurements :mod:`layercake.soak`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from layercake import outputs, terminal
from layercake.autobahn import WSGI_NOTE, AutobahnRun, autobahn_servers
from layercake.autobahn import grid_markdown as autobahn_markdown
from layercake.corpus import load_corpus, select
from layercake.errors import LayercakeError
from layercake.probe import (
    SPLITS,
    CaseResult,
    ServerProbe,
    by_category,
    category,
    cell_text,
    comparison_rows,
    grid_markdown,
    probe_servers,
)
from layercake.progress import Steps
from layercake.soak import Sample, SoakReport, soak

# The width of this invocation: COLUMNS, the terminal's, or 80 (layercake.terminal).
console: Console = terminal.stdout


def _server_names(positional: tuple[str, ...], option: tuple[str, ...]) -> list[str]:
    from servers.registry import SERVERS  # noqa: PLC0415 -- imports every layer

    names = [n.strip() for value in (*positional, *option) for n in value.split(",") if n.strip()]
    if names == ["all"]:  # the ones not installed are listed as such, with their pip extra
        return list(SERVERS)
    if not names:
        raise LayercakeError("name at least one server (or 'all'); see `layercake servers`", exit_code=2)
    return list(dict.fromkeys(names))


def _print_one(probe: ServerProbe) -> None:
    """One server: a row per case (the id whole, never cut), then what departed, with its rule."""
    console.print(f"[bold]probe: {probe.server} serving {probe.layer}[/]")
    console.print(f"[dim]$ {escape(probe.command)}[/]", highlight=False)
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    terminal.key_column(table, "case")
    for column in ("expect", "got", ""):
        table.add_column(column, no_wrap=True)
    for label, expect, answers in comparison_rows([probe]):
        result = answers[probe.server]
        closed = {True: " closed", False: " kept open", None: ""}[result.closed]
        table.add_row(
            label,
            expect,
            result.status_text() + closed + ("" if result.serving else " DEAD"),
            "[green]✓[/]" if result.passed else "[red]✗[/]",
        )
    console.print(table)
    _print_departures([probe])


def _print_departures(probes: list[ServerProbe]) -> None:
    """Every case some server answered otherwise than the case file expects, with who and the rule."""
    rows = [row for row in comparison_rows(probes) if any(not r.passed for r in row[2].values())]
    if not rows:
        return
    console.print(
        f"\n[bold]where {'the server departs' if len(probes) == 1 else 'servers depart'} from the case files[/]"
    )
    for label, expect, answers in rows:
        case_id = next(iter(answers.values())).case_id
        head = Text(f"{label}  expect {expect}", style="bold")
        rule = _rules.get(case_id, "")
        if rule:
            head.append(f"  ({rule})", style="dim")
        console.print(head)
        for server, result in answers.items():
            if not result.passed:
                text = f"{server}: {cell_text(result)} ({'; '.join(result.problems())})"
                console.print(Padding(Text(text, style="red"), (0, 0, 0, 4), expand=False))


def _print_grid(probes: list[ServerProbe], runs: list[AutobahnRun] | None = None) -> None:
    """Several servers: a row per server, a column per case category (as expected / run),
    banded to the width; then every case where a server departs, naming it."""
    shown = [p for p in probes if not p.skipped]
    categories = list(dict.fromkeys(category(r.case_id) for p in shown for r in p.results))
    counts = [by_category(p) for p in shown]
    headers = [*categories, "all"]

    def cell(row: int, column: int) -> Text:
        if column == len(categories):
            passed, run = shown[row].passed, len(shown[row].results)
        else:
            passed, run = counts[row].get(categories[column], (0, 0))
        if not run:
            return Text("")
        return Text(f"{passed}/{run}", style="green" if passed == run else "red")

    console.print("[bold]probe: how each server answered the corpus[/]")
    console.print("[dim]cases answered as the case file expects / cases run, by category[/]")
    widest = max([len(f"{p.passed}/{len(p.results)}") for p in shown] or [0])
    for table in terminal.banded(
        console.width, "server", [p.server for p in shown], headers, cell, cell_width=widest, justify="right"
    ):
        console.print(table)
    _print_departures(shown)
    if runs:  # the WebSocket column of each server, as a row per server: Autobahn's verdict counts
        by_server = {run.server: run for run in runs}
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        terminal.key_column(table, "server")
        table.add_column("WebSocket (Autobahn, strict)")
        for probe in shown:
            if probe.server in by_server:
                table.add_row(probe.server, _autobahn_cell(by_server[probe.server]))
        console.print(table)


def _autobahn_cell(run: AutobahnRun) -> str:
    if run.skipped:
        return f"[dim]{escape(run.cell())}[/]"
    return f"[green]{escape(run.cell())} ✓[/]" if run.strict() else f"[red]{escape(run.cell())} ✗[/]"


def _print_autobahn(runs: list[AutobahnRun]) -> None:
    table = Table(title="WebSocket: Autobahn testsuite against /ws (compression cases 12.*, 13.* excluded)")
    table.add_column("server")
    table.add_column("verdicts")
    table.add_column("not OK: case, verdict, what it tests", overflow="fold")
    wsgi = [run.server for run in runs if run.skipped == WSGI_NOTE]
    for run in runs:
        if run.skipped != WSGI_NOTE:
            bad = "\n".join(f"{c.case_id} {c.behavior}: {c.description}" for c in run.not_ok())
            table.add_row(run.server, _autobahn_cell(run), escape(bad))
    if len(wsgi) < len(runs):
        console.print(table)
    if wsgi:
        console.print(f"[dim]not run on {', '.join(wsgi)}: {escape(WSGI_NOTE)}[/]")
    for run in runs:
        if run.report_dir:
            console.print(f"[dim]{run.server}: {run.seconds:g} s, report {escape(run.report_dir)}/index.html[/]")


_rules: dict[str, str] = {}


@click.command("probe")
@click.argument("server_args", metavar="[SERVER]...", nargs=-1)
@click.option(
    "--servers",
    "server_opts",
    multiple=True,
    help="More servers (repeat or comma-separate); 'all' for every installed server.",
)
@click.option("--layer", help="Layer to serve; default: bare_wsgi or bare_asgi, the server's own interface.")
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(SPLITS),
    default=("whole",),
    show_default=True,
    help="How to write each request: whole, one byte per write, random pieces (repeatable).",
)
@click.option(
    "--case",
    "patterns",
    multiple=True,
    help="Only cases whose id contains this, e.g. smuggling or cl-te (repeatable); the ids are "
    "the rows of docs/probe-grid.md, one file each in layercake/corpus/.",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer.",
)
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write every result here.")
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the comparison grid as Markdown.",
)
@click.option(
    "--websocket/--no-websocket",
    default=None,
    help="Also run the Autobahn WebSocket testsuite against each ASGI server's /ws (needs Python 2.7; "
    "set up on first use).  Default: on with --servers all, off otherwise.",
)
@click.option(
    "--websocket-reports",
    "reports_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where Autobahn's HTML reports go, one folder per server (default: a folder in the cache; "
    "docs/autobahn for the site).",
)
def probe_cmd(
    server_args: tuple[str, ...],
    server_opts: tuple[str, ...],
    layer: str | None,
    splits: tuple[str, ...],
    patterns: tuple[str, ...],
    timeout: float,
    json_file: Path | None,
    markdown_file: Path | None,
    websocket: bool | None,
    reports_dir: Path | None,
) -> None:
    """Send the raw-request corpus (hostile and edge-case requests) to servers and show how each answered.

    With one server: a table of every case.  With several (`probe scratch-wsgi gunicorn-sync waitress`
    or `--servers all`): a grid comparing them on the same requests.  `--websocket` adds Autobahn's
    WebSocket testsuite (OK / NON-STRICT / INFORMATIONAL / UNIMPLEMENTED / FAILED per server, with every
    case that is not OK).
    """
    from layers import get_layer  # noqa: PLC0415
    from servers.registry import get_server  # noqa: PLC0415

    names = _server_names(server_args, server_opts)
    if websocket is None:
        websocket = [n.strip() for v in (*server_args, *server_opts) for n in v.split(",") if n.strip()] == ["all"]
    for name in names:  # a typo is refused before the banner and before any server starts
        get_server(name)
    if layer is not None:
        get_layer(layer)
    cases = select(load_corpus(), list(patterns))
    if not cases:
        raise LayercakeError(f"no corpus case matches {', '.join(patterns)}", exit_code=2)
    _rules.update({case.id: case.rule for case in cases})
    outputs.prepare(json_file, markdown_file)
    per_server = len(cases) * len(splits)
    console.print(f"[dim]{len(cases)} cases x {len(splits)} split(s) x {len(names)} server(s)[/]")
    steps = Steps(per_server * len(names), "cases", console=terminal.console(stderr=True))
    probes: list[ServerProbe] = []
    tally: dict[str, list[int]] = {}

    def progress(server: str, result: CaseResult) -> None:
        done = tally.setdefault(server, [0, 0])
        done[0] += result.passed
        done[1] += 1
        steps.status(f"{server}: {result.case_id}")
        # Counted by position, so a server skipped (not installed) counts as done; off a
        # terminal, one line per server rather than one per case (117 each).
        if steps.live or done[1] == per_server:
            position = names.index(server) * per_server + done[1]
            steps.update(f"{server}: {done[0]}/{done[1]} as expected", position, steps.total)

    runs: list[AutobahnRun] = []
    reports = Path()
    with steps:
        probe_servers(names, cases, layer, splits, timeout, progress, probes=probes)
    if websocket and not steps.interrupted:
        from layercake.autobahn import cache_dir  # noqa: PLC0415

        reports = (reports_dir or cache_dir() / "reports").resolve()
        ws_layer = layer if layer is not None and get_layer(layer).interface == "asgi" else None
        runs = autobahn_servers(names, reports, ws_layer, progress=lambda text: console.print(f"[dim]{text}[/]"))
    for probe in probes:
        if probe.skipped:
            why = "not installed" if "not installed" in probe.skipped else "skipped"
            console.print(f"[yellow]{probe.server}: {why}[/] -- {escape(probe.skipped)}")
    ran = [p for p in probes if not p.skipped and p.results]
    if not ran and not steps.interrupted:  # nothing was probed: a script must not read that as success
        raise LayercakeError("no server could be probed (see why above)", exit_code=1)
    if len(ran) == 1:
        _print_one(ran[0])
    elif ran:
        _print_grid(ran, runs)
    if runs:
        _print_autobahn(runs)
    for probe in ran:
        console.print(
            f"[bold]{probe.server}[/] ({probe.layer}): {probe.passed}/{len(probe.results)} as expected; "
            f"{sum(not r.serving for r in probe.results)} left it not serving"
            + (
                f" [yellow](partial: {len(probe.results)} of {per_server} cases)[/]"
                if len(probe.results) < per_server
                else ""
            )
        )
    if json_file is not None:
        by_server = {run.server: run.to_json() for run in runs}
        doc: object = [
            p.to_json() | ({"websocket": by_server[p.server]} if p.server in by_server else {}) for p in probes
        ]
        if steps.interrupted:  # a list cannot carry the marker: wrap it
            doc = steps.mark({"probes": doc})
        json_file.write_text(json.dumps(doc, indent=2))
        console.print(f"[dim]wrote {json_file}[/]")
    if markdown_file is not None:
        import os  # noqa: PLC0415

        base = os.path.relpath(reports, markdown_file.resolve().parent) if runs else None
        markdown_file.write_text(
            grid_markdown(probes, steps.markdown_note())
            + (f"\n## WebSocket (Autobahn)\n\n{autobahn_markdown(runs, base)}" if runs else "")
        )
        console.print(f"[dim]wrote {markdown_file}[/]")
    if any(run.interrupted for run in runs):
        console.print("[yellow]interrupted: the Autobahn runs above are the ones that finished[/]")
        sys.exit(130)
    written = [str(p) for p in (json_file, markdown_file) if p]
    steps.finish(f"the cases run so far are in {' and '.join(written)}" if written else "")


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


@click.command("soak")
@click.argument("layer")
@click.option(
    "--server", help="A name from `layercake servers`; default: our scratch server for the layer's interface."
)
@click.option("--duration", default=60.0, show_default=True, help="Seconds of load (an upper bound).")
@click.option("--concurrency", default=256, show_default=True, help="Client connections at once.")
@click.option("--max-requests", default=10_000_000, show_default=True, help="Stop after this many requests.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between memory/descriptor samples.")
@click.option("--workers", type=int, help="Server worker processes (where the server has them).")
@click.option("--threads", type=int, help="Threads per worker (where the server has them).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option(
    "--slowloris",
    "slow_clients",
    type=click.IntRange(1, 5000),
    is_flag=False,
    flag_value=1000,
    help="Instead of the mixed load: N clients trickling request heads a byte a second (alone: 1000, the "
    "experiment in docs/hardening.md) while a bystander measures GET /plaintext; --duration bounds it.",
)
@click.pass_context
def soak_cmd(
    ctx: click.Context,
    layer: str,
    server: str | None,
    duration: float,
    concurrency: int,
    max_requests: int,
    interval: float,
    workers: int | None,
    threads: int | None,
    json_file: Path | None,
    slow_clients: int | None,
) -> None:
    """Bounded mixed-endpoint load on loopback: errors, RSS over time, file descriptors before and after.

    Exits 1 if there were errors, leaked descriptors or growing memory.  With --slowloris N: N slow clients at
    once; exits 1 if the bystander was not served or a slow client was never cut.
    """
    from layers import get_layer  # noqa: PLC0415
    from servers.registry import default_server, get_server  # noqa: PLC0415

    server = get_server(server or default_server(get_layer(layer).interface)).name
    if duration <= 0 or concurrency <= 0 or max_requests <= 0 or interval <= 0:
        raise LayercakeError("--duration, --concurrency, --max-requests and --interval must be positive", exit_code=2)
    outputs.prepare(json_file)
    if slow_clients is not None:
        _slowloris(ctx, layer, server, slow_clients, duration, json_file)
        return
    every = max(1, round(5 / interval))  # off a terminal, a progress line every ~5 s
    steps = Steps(max(1, round(duration)), "seconds of load", console=terminal.console(stderr=True))
    samples: list[Sample] = []

    def progress(sample: Sample) -> None:
        samples.append(sample)
        if steps.live or len(samples) % every == 0:
            steps.update(
                f"{sample.requests} requests, RSS {_mib(sample.rss)}, {sample.fds} fds",
                min(round(sample.seconds), steps.total or 0),
                steps.total,
            )

    console.print(f"soak: {layer} on {server}, {duration:g} s at concurrency {concurrency}")
    with steps:
        report = soak(
            layer, server, duration, concurrency, max_requests, interval, progress, workers=workers, threads=threads
        )
    if steps.interrupted:  # Ctrl-C before the load began: nothing to report
        steps.finish()
    if report.interrupted:
        steps.interrupted, steps.done = True, round(report.elapsed)
        console.print(
            f"[yellow]interrupted[/] after {report.elapsed:g} of {duration:g} s: the figures below are partial"
        )
    _print_soak(report)
    if json_file is not None:
        json_file.write_text(report.to_json())
        console.print(f"[dim]wrote {json_file}[/]")
    steps.finish(f"the partial report is in {json_file}" if json_file else "")
    ctx.exit(0 if report.ok else 1)


def _slowloris(
    ctx: click.Context, layer: str, server: str, clients: int, duration: float, json_file: Path | None
) -> None:
    from layercake.slowloris import slowloris  # noqa: PLC0415

    console.print(f"slowloris: {layer} on {server}, {clients} slow clients for {duration:g} s")
    report = slowloris(layer, server, clients, duration, progress=lambda line: console.print(f"[dim]{line}[/]"))
    summary = report.summary()
    console.print(f"[dim]{escape(report.command)}[/]")
    before, after = report.fd_limit
    console.print(
        f"[dim]RLIMIT_NOFILE (ulimit -n) raised from {before} to {after} for the run (the server inherits it)[/]"
        if after > before
        else f"[dim]RLIMIT_NOFILE (ulimit -n) is {after}, enough for the run[/]"
    )
    table = Table(title=f"{clients} slow clients against {server}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("slow clients connected", summary["connected"]),
        ("cut by the server", summary["cut"]),
        ("never cut", summary["never_cut"]),
        ("cut after (median / max, s)", f"{summary['cut_median_s']} / {summary['cut_max_s']}"),
        ("answers before the cut", ", ".join(f"{k}: {v}" for k, v in report.statuses.items()) or "-"),
        ("bystander p99 unloaded (ms)", summary["p99_unloaded_ms"]),
        ("bystander p99 loaded (ms)", summary["p99_loaded_ms"]),
        ("bystander served / failed while loaded", f"{summary['bystander_served']} / {summary['bystander_failures']}"),
        ("server RSS before / peak / after (MiB)",
         f"{summary['rss_before_mib']} / {summary['rss_peak_mib']} / {summary['rss_after_mib']}"),
    ]  # fmt: skip
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    if json_file is not None:
        json_file.write_text(report.to_json())
        console.print(f"[dim]wrote {json_file}[/]")
    ok = report.bystander_failures == 0 and report.loaded and report.never_cut == 0
    if ok:
        console.print("[bold green]kept serving and cut every slow client[/]")
    else:
        problems = []
        if report.bystander_failures or not report.loaded:
            problems.append(f"the bystander failed {report.bystander_failures} time(s)")
        if report.never_cut:
            problems.append(f"{report.never_cut} slow clients were never cut in {duration:g} s "
                            "(longer than the server's header timeout shows whether it cuts them at all)")  # fmt: skip
        console.print(f"[bold red]did not hold:[/] {'; '.join(problems)}")
    ctx.exit(0 if ok else 1)


def _print_soak(report: SoakReport) -> None:
    console.print(f"[dim]{escape(report.command)}[/]")
    rate = report.requests / report.elapsed if report.elapsed else 0
    console.print(
        f"{report.requests} requests in {report.elapsed:g} s ({rate:.0f}/s) over {report.processes} "
        f"server process(es), concurrency {report.concurrency}"
    )
    table = Table(title="responses")
    table.add_column("request and status")
    table.add_column("count", justify="right")
    for label, count in report.statuses.items():
        table.add_row(label, str(count))
    console.print(table)
    timeline = Table(title="server RSS and fds over time")
    for column in ("seconds", "requests", "RSS", "fds"):
        timeline.add_column(column, justify="right")
    for sample in report.timeline():
        timeline.add_row(f"{sample.seconds:.1f}", str(sample.requests), _mib(sample.rss), str(sample.fds))
    console.print(timeline)
    if report.errors:
        for kind, count in report.errors.items():
            console.print(f"[red]error[/] {escape(kind)}: {count}")
    else:
        console.print("[green]no errors[/]")
    console.print(
        f"RSS: {_mib(report.rss_before)} before, {_mib(report.rss_after)} after; "
        f"growth after warm-up {_mib(report.rss_growth())} "
        + ("[green](flat)[/]" if report.memory_flat() else "[red](growing)[/]")
    )
    console.print(
        f"file descriptors: {report.fds_before} before, {report.fds_after} after "
        + ("[green](none leaked)[/]" if report.leaked_fds == 0 else f"[red]({report.leaked_fds} leaked)[/]")
    )
    if report.interrupted:
        console.print("[bold yellow]soak interrupted[/]: no verdict on a partial run")
    else:
        console.print("[bold green]soak passed[/]" if report.ok else "[bold red]soak failed[/]")


COMMANDS = [probe_cmd, soak_cmd]
