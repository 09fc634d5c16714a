"""Commands about servers: ``servers`` (the registry), ``serve`` (one layer, one server), ``grid``.

Thin on purpose: the registry is :mod:`servers.registry`, serving is
:mod:`layercake.serving`, the grid is :mod:`layercake.grid`.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layercake.errors import LayercakeError
from servers import bridges
from servers.registry import SERVERS, ServerOptions


def _yes(flag: bool) -> str:
    return "[green]✓[/]" if flag else "[dim]·[/]"


#: Below this many columns the full table wraps every cell into a tall column of word
#: fragments (13 rows took 190 lines at 120 columns), so the capabilities stay in a table
#: and how each server runs -- parser, concurrency, flags, native command -- is listed under it.
_FULL_TABLE_WIDTH = 200


@click.command("servers")
@click.option("--notes/--no-notes", default=True, help="Print each server's notes under the table.")
def servers_cmd(notes: bool) -> None:
    """The servers layercake can run a layer on, what each supports, and its native command."""
    console = Console()
    full = console.width >= _FULL_TABLE_WIDTH
    table = Table(
        title="servers (any layer runs on any of them; the other interface goes through a bridge)",
        box=None if not full else box.HEAVY_HEAD,
        pad_edge=full,
        header_style="bold",
        # one space between columns on an 80-column terminal, so the eight fit
        padding=(0, 1) if full or console.width >= 90 else (0, 1, 0, 0),
    )
    short = ("server", "interface", "installed", "keep-alive", "ws", "lifespan", "workers", "threads")
    for col in short:
        table.add_column(col, no_wrap=not full, overflow="fold")
    if full:
        for col in ("--http", "--loop", "parser / concurrency", "native command"):
            table.add_column(col, overflow="fold")
    missing_extras: dict[str, list[str]] = {}
    for spec in SERVERS.values():
        caps = spec.capabilities
        missing = spec.missing
        if missing is not None:
            missing_extras.setdefault(spec.extra, []).append(spec.name)
        installed = "[green]yes[/]" if missing is None else "[red]no[/]"
        if missing is not None and full:
            installed += " (pip install -e " + escape(f"'.[{spec.extra}]'") + ")"
        row = [
            spec.name,
            spec.interface,
            installed,
            _yes(caps.keep_alive),
            _yes(caps.websockets),
            _yes(caps.lifespan) if spec.interface == "asgi" else "[dim]n/a[/]",
            _yes(caps.workers),
            _yes(caps.threads),
        ]
        if full:
            row += [
                " | ".join(caps.http_parsers) or "[dim]fixed[/]",
                " | ".join(caps.loops) or "[dim]fixed[/]",
                f"{spec.parser}; {spec.concurrency}",
                escape(spec.pattern()),
            ]
        table.add_row(*row)
    console.print(table)
    if not full:
        how = Table.grid(padding=(0, 2))
        how.add_column(no_wrap=True, style="bold")
        how.add_column()
        for spec in SERVERS.values():
            caps = spec.capabilities
            flags = f"--http {' | '.join(caps.http_parsers) or 'fixed'}, --loop {' | '.join(caps.loops) or 'fixed'}"
            how.add_row(
                spec.name,
                f"{escape(spec.parser)}; {escape(spec.concurrency)}\n[dim]{escape(flags)}[/]\n"
                f"[cyan]$ {escape(spec.pattern())}[/]",
            )
        console.print()
        console.print("[bold]how each runs[/]: parser and concurrency, the --http/--loop choices, the native command")
        console.print(how)
        for extra, names in missing_extras.items():
            console.print(
                f"[red]not installed[/]: {', '.join(names)} -- pip install -e "
                + escape(f"'.[{extra}]'")
                + " from the layercake checkout"
            )
    if notes:
        for spec in SERVERS.values():
            for note in spec.notes:
                console.print(f"[bold]{spec.name}[/]: {escape(note)}", highlight=False)
        for bridge, losses in bridges.LOSSES.items():
            for loss in losses:
                console.print(f"[cyan]{bridge} bridge[/]: {escape(loss)}", highlight=False)


def _options(
    host: str, port: int, workers: int | None, threads: int | None, http: str | None, loop: str | None, **extra: object
) -> ServerOptions:
    return ServerOptions(host=host, port=port, workers=workers, threads=threads, http=http, loop=loop, **extra)  # type: ignore[arg-type]  # extra holds only ServerOptions fields, built above


def _server_flags(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option(
                "--host",
                default="127.0.0.1",
                show_default=True,
                help="Address to bind; keep the loopback default unless you mean to expose the server.",
            ),
            click.option("--workers", type=int, help="Worker processes (servers with workers)."),
            click.option("--threads", type=int, help="Threads per worker, or the WSGI->ASGI bridge's pool."),
            click.option("--http", help="HTTP parser, e.g. h11 | httptools on uvicorn."),
            click.option("--loop", help="Event loop: asyncio | uvloop."),
        ]
    ):
        f = option(f)
    return f


@click.command("serve")
@click.argument("layer", required=False)
@click.option(
    "--app",
    "app",
    metavar="MODULE:ATTR",
    help="Serve your own WSGI or ASGI application instead of a layer (the current directory is on the path).",
)
@click.option(
    "--interface",
    type=click.Choice(["wsgi", "asgi"]),
    help="--app's interface, when it cannot be told from the callable.",
)
@click.option(
    "--server", help="A name from `layercake servers`; default: our scratch server for the layer's interface."
)
@click.option("--port", default=8000, show_default=True, type=int, help="0 picks a free port.")
@_server_flags
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop by itself after this long (for scripts and tests).",
)
def serve_cmd(
    layer: str | None,
    app: str | None,
    interface: str | None,
    server: str | None,
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    http: str | None,
    loop: str | None,
    access_log: bool,
    seconds: float | None,
) -> None:
    """Serve LAYER (or --app MODULE:ATTR, your own app) until Ctrl-C; prints the native command, the URL and curl lines."""
    from layercake.apps import app_or_layer, is_user_app
    from layercake.serving import serve

    target = app_or_layer(layer, app, interface)
    # --app: the server imports the user's module from the user's directory
    env = target.env() if is_user_app(target) else None  # type: ignore[attr-defined]  # is_user_app() says it is a UserApp, which has env()
    opts = _options(host, port, workers, threads, http, loop, access_log=access_log, capture_output=False, env=env)
    raise SystemExit(serve(target, server, opts, echo=lambda line: click.echo(line), seconds=seconds))


def _names(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


@click.command("grid")
@click.option("--layers", "layer_names", multiple=True, help="Layers to run (repeat or comma-separate); default all.")
@click.option(
    "--servers", "server_names", multiple=True, help="Servers to run (repeat or comma-separate); default all."
)
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1), help="Pairs run at the same time.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write every result here.")
@click.option(
    "--markdown", "markdown_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the grid as Markdown."
)
def grid_cmd(
    layer_names: tuple[str, ...],
    server_names: tuple[str, ...],
    jobs: int,
    json_file: Path | None,
    markdown_file: Path | None,
) -> None:
    """Run the contract for every layer on every server, for real, and print what works where.

    Exit status 1 if a pair failed in a way the registry does not explain, or if no pair
    could run at all (every server named is not installed).
    """
    import threading

    from layercake import outputs, terminal
    from layercake.grid import SYMBOL, Cell, grid_of, render, run_grid, write_outputs
    from layercake.progress import Steps
    from layers import LAYERS, get_layer
    from servers.registry import get_server

    outputs.prepare(json_file, markdown_file)
    layers_wanted, servers_wanted = _names(layer_names), _names(server_names)
    for name in layers_wanted or []:  # a typo is refused before anything starts
        get_layer(name)
    for name in servers_wanted or []:
        get_server(name)
    total = len(layers_wanted or LAYERS) * len(servers_wanted or SERVERS)
    cells: list[Cell] = []
    steps = Steps(total, "pairs", console=terminal.console(stderr=True), log_steps=True)

    counting = threading.Lock()  # pairs finish in the pool's threads, two at a time

    def progress(c: Cell) -> None:
        via = f" ({c.bridge})" if c.bridge else ""
        with counting:
            cells.append(c)
            steps.advance(f"{SYMBOL[c.status]} {c.layer} on {c.server}{via}  {c.seconds:.1f}s")

    with steps:
        run_grid(layers_wanted, servers_wanted, jobs=jobs, on_cell=progress)
    grid = grid_of(cells, layers_wanted, servers_wanted)
    out = terminal.console()
    out.print(render(grid, out.width))
    write_outputs(grid, json_file, markdown_file, steps.partial(), steps.markdown_note())
    written = [str(p) for p in (json_file, markdown_file) if p]
    steps.finish(f"the {len(cells)} finished pair(s) are in {' and '.join(written)}" if written else "")
    unexplained = [c for c in grid.cells if c.unexplained or (c.status == "fail" and not c.groups)]
    if unexplained:
        raise LayercakeError(f"{len(unexplained)} pair(s) failed in ways the registry does not explain", 1)
    if grid.cells and all(c.status == "n/a" for c in grid.cells):  # nothing ran: not a clean grid
        raise LayercakeError("no pair could run (see why above)", 1)


COMMANDS = [servers_cmd, serve_cmd, grid_cmd]
