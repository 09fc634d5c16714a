"""``layercake read``, ``layercake loc`` and ``layercake site``: reading the annotated source.

Thin wrappers: the work is in :mod:`layercake.reader` (terminal) and
:mod:`layercake.site` (static HTML), which the tests call directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from layercake.errors import LayercakeError


def _console() -> Console:
    """Colour and the terminal's width on a TTY; plain text otherwise, as wide as $COLUMNS
    or 80 (layercake.terminal's rule: no fixed width forced on a pipe -- set COLUMNS=160
    for the side-by-side layout in a file)."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, no_color=True)


@click.command()
@click.argument("targets", nargs=-1, metavar="TARGET [TARGET]")
@click.option("--diff", is_flag=True, help="Show two layers (or the two scratch servers) side by side.")
@click.option("--comments", is_flag=True, help="With --diff: show comments and docstrings too, not just code.")
@click.option("--above", is_flag=True, help="Put comments above the code even on a wide terminal.")
@click.option("--pager/--no-pager", default=None, help="Page the output (default: when stdout is a terminal).")
@click.option(
    "--measure/--no-measure",
    default=True,
    show_default=True,
    help="Measure a layer's in-process counters now when no stored bench result has them.",
)
def read(targets: tuple[str, ...], diff: bool, comments: bool, above: bool, pager: bool | None, measure: bool) -> None:
    """Read annotated source: a layer, a server, `core`, `shared` or a project path.

    \b
      layercake read flask
      layercake read scratch-asgi
      layercake read --diff bare_wsgi werkzeug
      layercake read --diff scratch-wsgi scratch-asgi
    """
    from layercake.figures import figures_for
    from layercake.reader import render_diff, render_target, resolve

    if diff and len(targets) != 2:
        raise LayercakeError(
            "read --diff takes exactly two targets, e.g. `layercake read --diff bare_asgi starlette`", exit_code=2
        )
    if not diff and len(targets) != 1:
        raise LayercakeError("read takes one target (a layer, a server or a path); use --diff A B for two", exit_code=2)
    resolved = [resolve(t) for t in targets]
    if diff and resolved[0].kind != resolved[1].kind:
        # Alignment is by handler name (layers) or section heading (servers): a layer and a server share
        # neither, so a side-by-side of the two would pair unrelated code.
        raise LayercakeError(
            f"read --diff compares two of a kind (two layers, the two scratch servers or two "
            f"files); {targets[0]} is a {resolved[0].kind} and {targets[1]} a {resolved[1].kind}",
            exit_code=2,
        )
    figures = figures_for([t.name for t in resolved if t.kind == "layer"], measure=measure)
    console = _console()
    use_pager = sys.stdout.isatty() if pager is None else pager

    def draw() -> None:
        if diff:
            render_diff(console, resolved[0], resolved[1], figures, comments=comments)
        else:
            render_target(console, resolved[0], figures, side_by_side=False if above else None)

    if use_pager:
        # less needs -R to show colours; respect a LESS the user already set.
        os.environ.setdefault("LESS", "-R")
        with console.pager(styles=True):
            draw()
    else:
        draw()


@click.command()
@click.option(
    "--measure/--no-measure",
    default=True,
    show_default=True,
    help="Measure in-process counters now for layers no stored bench result covers.",
)
def loc(measure: bool) -> None:
    """Lines of each layer's own code, and lines of library code run per request.

    "Own code" counts the layer's app.py (cloc's rule: comments and docstrings apart);
    "lines run" are the distinct source lines one GET /json executes, from the
    benchmark's in-process counters, and "of which library" those outside the layer
    and the driver -- how much each abstraction adds, in code.
    """
    from layercake.figures import figures_for
    from layercake.reader import loc_table

    console = _console()
    with console.status("measuring in-process counters…"):
        figures = figures_for(measure=measure)
    console.print(loc_table(figures))


@click.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("site"),
    show_default=True,
    help="Directory to write the site into.",
)
@click.option("--serve", is_flag=True, help="Then serve it on scratch-wsgi (our own server) until Ctrl-C.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port for --serve.")
@click.option("--traces/--no-traces", default=True, help="Record the canonical traces (needs running servers).")
@click.option(
    "--measure/--no-measure",
    default=True,
    show_default=True,
    help="Measure in-process counters now for layers no stored bench result covers.",
)
@click.option(
    "--screenshots",
    "screenshots",
    type=click.Path(file_okay=False, path_type=Path),
    help="Then photograph the index and a source page in headless Chromium into this directory.",
)
def site(out: Path, serve: bool, port: int, traces: bool, measure: bool, screenshots: Path | None) -> None:
    """Build the static site: the ladder, annotated source, benchmarks, grid, traces.

    \b
      layercake site --out site/
      layercake site --out site/ --serve
      layercake site --out site/ --screenshots docs/screenshots/
    """
    from layercake.figures import figures_for
    from layercake.site import build_site, serve_site

    console = Console()
    with console.status("in-process counters…"):
        figures = figures_for(measure=measure)
    report = build_site(out, figures=figures, traces=traces, log=lambda msg: console.print(f"[dim]{msg}[/]"))
    console.print(f"[bold green]built[/] {report.pages} pages in {report.seconds:.1f} s → {out}/index.html")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    if screenshots is not None:
        from layercake.site.screenshots import take_screenshots

        for png in take_screenshots(out, screenshots):
            console.print(f"[bold green]screenshot[/] {png}")
    if serve:
        serve_site(out, port=port, log=console.print)


COMMANDS = [read, loc, site]
