"""Annotated source in the terminal: ``layercake read``, ``read --diff`` and ``loc``.

Theory of operation
-------------------
:func:`resolve` turns what the user typed -- a layer name (``flask``), a server name
(``scratch-asgi``), a group (``shared``, ``core``) or a path inside the project -- into
a :class:`Target`: a title, what it adds over the rung below, and the files to show.
:mod:`layercake.source` cuts each file into pycco sections; this module lays them out
with rich:

* a **header** panel: the description, the lines of code and of comments, and the
  measured per-request cost (µs, Python calls, distinct lines executed) from the
  benchmark engineer's in-process counters (:mod:`layercake.figures`).  When nothing
  has been measured the panel says so and names the command that measures it --
  figures are never typed in;
* each **section** with its prose (rendered as markdown) *beside* its code when the
  terminal is wide enough for both (:data:`SIDE_BY_SIDE_WIDTH`), *above* it otherwise,
  the code highlighted by pygments with the file's real line numbers;
* ``--diff A B``: two files cut into blocks keyed by handler name or section heading
  (:func:`layercake.source.align`) and shown as two columns, block beside block, so
  ``get_item`` in Flask sits next to ``get_item`` in bare WSGI.

Paging is the caller's choice (:func:`read_command` pages when stdout is a terminal);
everything here writes to whatever :class:`rich.console.Console` it is given, so tests
record the output.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from layercake.errors import LayercakeError, UnknownName
from layercake.figures import HOW_TO_MEASURE, Figures, load_figures
from layercake.source import Line, SourceFile, align, blocks, consecutive_runs, parse

PROJECT = Path(__file__).resolve().parent.parent

# Below this many columns the prose goes above the code: 80 columns of code plus a
# readable 40-column prose column plus the line numbers and the gutter.
SIDE_BY_SIDE_WIDTH = 130

THEME = "monokai"

# Our own servers and the groups of shared code, by the names the CLI accepts.  The
# scratch servers may be one module or a package; whichever exists is read.
SERVER_SOURCES: dict[str, tuple[str, ...]] = {
    "scratch-wsgi": ("servers/scratch_wsgi.py", "servers/scratch_wsgi"),
    "scratch-asgi": ("servers/scratch_asgi.py", "servers/scratch_asgi"),
}
GROUPS: dict[str, tuple[str, str]] = {
    "core": ("servers/core", "The sans-I/O core both scratch servers share: framing, environ/scope, limits."),
    "shared": ("layers/shared", "What every layer shares: the store, the validator, introspection, the index page."),
}


@dataclass
class Target:
    """What ``layercake read`` shows: a titled set of files."""

    name: str
    kind: str  # "layer" | "server" | "group" | "file"
    description: str
    files: list[Path]
    below: str | None = None  # the rung this one is built on
    extra: list[str] = field(default_factory=list)  # further header lines


def _python_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _first_paragraph(path: Path) -> str:
    try:
        doc = parse(path).docstring
    except (OSError, UnicodeDecodeError):
        return ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def readable_names() -> list[str]:
    """Every name :func:`resolve` accepts besides paths."""
    from layers import LAYERS

    return [*LAYERS, *SERVER_SOURCES, *GROUPS]


def resolve(target: str, project: Path = PROJECT) -> Target:
    """The layer, server, group or project path called ``target``.

    Raises :class:`UnknownName` (listing the names) for a name that is none of these,
    and :class:`LayercakeError` for a path outside the project or a layer whose source
    has not been written.
    """
    from layers import LAYERS

    if target in LAYERS:
        layer = LAYERS[target]
        source = project / "layers" / layer.name / "app.py"
        if not source.exists():
            raise LayercakeError(f"layer {target!r} has no source yet ({source.relative_to(project)} is missing)")
        adds = layer.relation
        return Target(
            layer.name, "layer", layer.description, [source], layer.below, [f"{layer.interface.upper()} layer, {adds}"]
        )
    if target in SERVER_SOURCES:
        for candidate in SERVER_SOURCES[target]:
            path = project / candidate
            if path.exists():
                files = _python_files(path)
                return Target(target, "server", _first_paragraph(files[0]) if files else "", files)
        raise LayercakeError(f"server {target!r} has no source yet ({SERVER_SOURCES[target][0]} is missing)")
    if target in GROUPS:
        where, description = GROUPS[target]
        return Target(target, "group", description, _python_files(project / where))
    try:
        from servers.registry import SERVERS
    except ImportError:  # the registry is optional for reading
        SERVERS = {}
    if target in SERVERS:
        raise LayercakeError(
            f"{target} is a third-party server: layercake annotates its own, {' and '.join(SERVER_SOURCES)}; "
            f"`layercake servers` shows how {target} is run, and servers/registry.py is readable with "
            "`layercake read servers/registry.py`",
            exit_code=2,
        )
    path = Path(target)
    if path.suffix == ".py" or os.sep in target or "/" in target or path.exists():
        resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if not resolved.exists():
            resolved = (project / target).resolve()
        try:
            shown = resolved.relative_to(project)
        except ValueError:
            raise LayercakeError(
                f"{target} is outside the project ({project}); read only reads layercake's own source", exit_code=2
            ) from None
        if not resolved.exists():
            raise LayercakeError(f"no such file in the project: {shown}", exit_code=2)
        files = _python_files(resolved)
        if not files:
            raise LayercakeError(f"no Python files under {shown}", exit_code=2)
        return Target(str(shown), "file", _first_paragraph(files[0]) if resolved.is_file() else "", files)
    raise UnknownName("layer, server or path", target, readable_names())


# --- The header ---


def cost_lines(name: str, figures: Figures) -> list[Text]:
    """The measured per-request figures for layer ``name``, or how to measure them."""
    cost = figures.cost(name)
    if cost is None and name in figures.failures:
        return [
            Text.assemble(
                ("per request: ", "bold"), ("could not be measured: ", "red"), figures.failures[name].splitlines()[0]
            )
        ]
    if cost is None:
        return [
            Text.assemble(
                ("per request: ", "bold"),
                ("not measured yet — run ", "yellow"),
                (HOW_TO_MEASURE["in_process"], "bold yellow"),
            )
        ]
    out = [Text.assemble(("per request: ", "bold"), cost.summary())]
    if cost.by_package:
        parts = ", ".join(f"{pkg} {n['calls']:,}" for pkg, n in cost.by_package.items() if n.get("calls"))
        out.append(Text.assemble(("calls by package: ", "bold"), parts))
    out.append(Text(cost.provenance, style="dim"))
    return out


def throughput_lines(target: Target, figures: Figures) -> list[Text]:
    """Requests per second over real sockets, from the latest ladder bench, or how to get them."""
    if target.kind == "layer":
        best = figures.rps(target.name)
        rows = [best] if best else []
        how = HOW_TO_MEASURE["ladder"]
    else:
        rows = figures.server_rps(target.name)[:3]
        from layers import LAYERS

        interface = "wsgi" if "wsgi" in target.name else "asgi"
        native = ",".join(name for name, layer in LAYERS.items() if layer.interface == interface)
        how = f"layercake bench --servers {target.name} --layers {native} --json docs/bench/{target.name}.json"
    if not rows:
        return [Text.assemble(("req/s: ", "bold"), ("not measured yet — run ", "yellow"), (how, "bold yellow"))]
    parts = "; ".join(
        f"{t.rps:,.0f} ({t.layer} on {t.server_label}, {t.endpoint}{f', c{t.concurrency}' if t.concurrency else ''})"
        for t in rows
    )
    return [
        Text.assemble(
            ("req/s: ", "bold"),
            parts,
            (f"  {rows[0].provenance}", "dim"),
        )
    ]


def header(target: Target, sources: list[SourceFile], figures: Figures) -> Panel:
    code = sum(s.code_lines for s in sources)
    comments = sum(s.comment_lines for s in sources)
    rows: list[RenderableType] = []
    if target.description:
        rows.append(Text(target.description))
    rows.extend(Text(line, style="italic") for line in target.extra)
    files = ", ".join(_display(s.path) for s in sources)
    rows.append(Text.assemble(("source: ", "bold"), files))
    rows.append(Text.assemble(("lines: ", "bold"), f"{code:,} of code, {comments:,} of comments and docstrings"))
    if target.kind == "layer":
        rows.extend(cost_lines(target.name, figures))
    if target.kind in ("layer", "server"):
        rows.extend(throughput_lines(target, figures))
    return Panel(Group(*rows), title=f"[bold]{target.name}[/]", title_align="left", box=box.ROUNDED)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


# --- Sections ---


def code_renderable(lines: list[Line], width: int | None = None) -> RenderableType:
    """Highlighted code with the file's own line numbers; a gap is shown as ``⋮``."""
    parts: list[RenderableType] = []
    for i, run in enumerate(consecutive_runs(lines)):
        if i:
            parts.append(Text("      ⋮", style="dim"))
        parts.append(
            Syntax(
                "\n".join(ln.text for ln in run),
                "python",
                theme=THEME,
                line_numbers=True,
                start_line=run[0].number,
                word_wrap=True,
                code_width=width,
                background_color="default",
            )
        )
    return Group(*parts)


#: Below this width a README's Markdown table is shown as a list: rich draws a table at any
#: width by cutting its cells with "…", and a README's cells are code a reader needs whole.
NARROW_TABLES = 120


def tables_as_lists(markdown: str) -> str:
    """Each Markdown table as a bullet list: one item per row, the cells joined by " — "."""
    out: list[str] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.lstrip().startswith("|") and re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", following) and "-" in following:
            headers = _cells(line)
            index += 2
            out.append("*" + " — ".join(headers) + "*:")
            out.append("")
            while index < len(lines) and lines[index].lstrip().startswith("|"):
                out.append("- " + " — ".join(cell for cell in _cells(lines[index]) if cell))
                index += 1
            out.append("")
            continue
        out.append(line)
        index += 1
    return "\n".join(out)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def render_file(console: Console, source: SourceFile, side_by_side: bool | None = None) -> None:
    """Print one file, section by section: prose beside (or above) its code."""
    if side_by_side is None:
        side_by_side = console.width >= SIDE_BY_SIDE_WIDTH
    console.print(Rule(f"[bold]{_display(source.path)}[/]", style="cyan"))
    for section in source.sections:
        prose = Markdown(section.prose) if section.prose.strip() else Text("")
        code = code_renderable(section.code) if section.code else Text("")
        if side_by_side:
            grid = Table.grid(padding=(0, 2), expand=True)
            grid.add_column(ratio=2)
            grid.add_column(ratio=3)
            grid.add_row(prose, code)
            console.print(grid)
        else:
            if section.prose.strip():
                console.print(Padding(prose, (0, 0, 0, 1)))
            if section.code:
                console.print(code)
        console.print()


def render_target(
    console: Console, target: Target, figures: Figures | None = None, side_by_side: bool | None = None
) -> None:
    """``layercake read TARGET``: the header, then every file."""
    figures = figures if figures is not None else load_figures()
    sources = [parse(path) for path in target.files]
    console.print(header(target, sources, figures))
    readme = target.files[0].parent / "README.md" if target.kind == "layer" else None
    if readme is not None and readme.exists():
        # The layer's README says what it adds and how a request flows through it.
        text = readme.read_text(encoding="utf-8")
        if console.width < NARROW_TABLES:
            text = tables_as_lists(text)
        console.print(Padding(Markdown(text), (0, 1)))
    for source in sources:
        render_file(console, source, side_by_side)


# --- Side by side ---


def _single_file(target: Target) -> Path:
    if len(target.files) != 1:
        raise LayercakeError(
            f"--diff compares two single files (a layer, a scratch server or a path); "
            f"{target.name} is {len(target.files)} files: read it without --diff",
            exit_code=2,
        )
    return target.files[0]


def render_diff(console: Console, a: Target, b: Target, figures: Figures | None = None, comments: bool = False) -> None:
    """``layercake read --diff A B``: block beside block, aligned by handler or heading.

    Code only by default, so a rung fits beside the one below it; ``comments`` shows
    each block's full source, comments and docstrings included.
    """
    figures = figures if figures is not None else load_figures()
    source_a, source_b = parse(_single_file(a)), parse(_single_file(b))
    heads = Table.grid(padding=(0, 2), expand=True)
    heads.add_column(ratio=1)
    heads.add_column(ratio=1)
    heads.add_row(header(a, [source_a], figures), header(b, [source_b], figures))
    console.print(heads)
    half = max(20, (console.width - 7) // 2)
    table = Table(box=box.SIMPLE_HEAD, expand=True, show_lines=True, padding=(0, 1))
    table.add_column(a.name, ratio=1, overflow="fold")
    table.add_column(b.name, ratio=1, overflow="fold")
    for left, right in align(blocks(source_a), blocks(source_b)):
        key = (left or right).key  # type: ignore[union-attr]  # an aligned pair always has at least one side
        table.add_row(Text(key, style="bold magenta"), Text(key, style="bold magenta"))
        cells = [
            code_renderable(blk.lines if comments else blk.code, half - 8)
            if blk and (blk.lines if comments else blk.code)
            else Text("(nothing here)" if blk is None else "(comments only)", style="dim italic")
            for blk in (left, right)
        ]
        table.add_row(*cells)
    console.print(table)
    console.print(
        Text(
            f"{a.name}: {source_a.code_lines:,} lines of code   {b.name}: {source_b.code_lines:,} lines of code",
            style="bold",
        )
    )


# --- Lines of code ---


def loc_table(figures: Figures | None = None, project: Path = PROJECT) -> Table:
    """``layercake loc``: each layer's own lines, and the lines executed per request."""
    from layers import LAYERS

    figures = figures if figures is not None else load_figures()
    # Two-line headers and no outer border, so the eight columns fit 80 with every name whole.
    table = Table(title="Lines of code: what each abstraction adds", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("layer", no_wrap=True)
    table.add_column("below", no_wrap=True)
    for header in ("own\ncode", "com-\nments", "lines\nrun", "of\nwhich\nlibrary", "calls", "µs"):
        table.add_column(header, justify="right", no_wrap=True)
    missing = False
    for layer in LAYERS.values():
        path = project / "layers" / layer.name / "app.py"
        if path.exists():
            src = parse(path)
            own, comments = f"{src.code_lines:,}", f"{src.comment_lines:,}"
        else:
            own = comments = "(not written)"
        cost = figures.cost(layer.name)
        if cost is None:
            missing = True
            run = library = calls = us = "—"
        else:
            run = f"{cost.lines:,}" if cost.lines is not None else "—"
            library = f"{cost.library_lines:,}" if cost.library_lines is not None else "—"
            calls = f"{cost.calls:,}" if cost.calls is not None else "—"
            us = f"{cost.us:,.1f}" if cost.us is not None else "—"
        table.add_row(layer.name, layer.below or layer.interface.upper(), own, comments, run, library, calls, us)
    # Our servers, for scale: what serving takes when it is written to be read.  Their
    # per-request work is not counted in-process (no server runs there), hence no figures.
    table.add_section()
    for name in [*SERVER_SOURCES, *GROUPS]:
        try:
            target = resolve(name, project)
        except LayercakeError:
            continue
        sources = [parse(path) for path in target.files]
        kind = {"core": "sans-I/O", "shared": "shared"}.get(name, "server")
        table.add_row(
            name,
            kind,
            f"{sum(x.code_lines for x in sources):,}",
            f"{sum(x.comment_lines for x in sources):,}",
            "",
            "",
            "",
            "",
            style="dim",
        )
    notes = ["lines run, of which library, calls and µs: for one GET /json, in-process (no socket)"]
    if figures.costs:
        notes.append(f"per-request figures {figures.provenance}")
    if missing:
        notes.append(f"missing figures: not measured yet — run `{HOW_TO_MEASURE['in_process']}`")
    notes.extend(f"{name}: {why.splitlines()[0]}" for name, why in figures.failures.items())
    table.caption = "\n".join(notes) or None
    return table
