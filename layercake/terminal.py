"""Where the CLI's output goes, and how wide it may be.

Theory of operation
-------------------
One rule for every command: a table is as wide as the place it is printed to --
``COLUMNS`` when the user set it, the terminal's real width on a TTY, and **80 columns**
anywhere else (a pipe, a file, a CI log).  That is what rich does by itself for a
:class:`~rich.console.Console` made at the moment of printing; the trouble was
consoles made at import time (which freeze ``COLUMNS`` as it was then) and commands that
forced 140 or 160 columns on a pipe.  :data:`stdout` and :data:`stderr` are stand-ins
that build the real console on first use and again whenever ``sys.stdout`` or
``COLUMNS`` changes, so a module can keep a global ``console`` and still print at the
width of *this* invocation (which is also what lets the tests render every command at
80 columns in-process).

Commands make their tables fit that width rather than cutting them: names a person needs
(layers, servers, case ids, environ keys) are never truncated -- see :func:`key_column`
-- and a table with more columns than fit is printed in bands (:func:`banded`), each
band repeating the key column.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table

#: Where rich falls back when the output is not a terminal and COLUMNS is unset.
DEFAULT_WIDTH = 80


class _ConsoleFor:
    """A :class:`Console` for the current ``sys.stdout``/``sys.stderr`` and ``COLUMNS``."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._key: tuple[int, str | None] | None = None
        self._console: Console | None = None

    def current(self) -> Console:
        stream = sys.stderr if self._stderr else sys.stdout
        key = (id(stream), os.environ.get("COLUMNS"))
        if self._console is None or key != self._key:
            self._console = Console(stderr=self._stderr)
            self._key = key
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)


#: The console for results (tables, verdicts).
stdout: Any = _ConsoleFor(stderr=False)
#: The console for progress and notes, so ``layercake grid > grid.txt`` keeps only the grid.
stderr: Any = _ConsoleFor(stderr=True)


def console(stderr: bool = False, **options: Any) -> Console:
    """A console made now, at the width rule above (for a command that sets its own options)."""
    return Console(stderr=stderr, **options)


def key_column(table: Table, header: str, **options: Any) -> None:
    """A column of names a person needs: never wrapped, never cut with an ellipsis."""
    table.add_column(header, no_wrap=True, overflow="ignore", min_width=len(header), **options)


def banded(
    width: int,
    key_header: str,
    keys: Sequence[str],
    headers: Sequence[str],
    cell: Callable[[int, int], Any],
    title: str = "",
    cell_width: int | None = None,
    justify: str = "left",
) -> list[RenderableType]:
    """One table per band of columns, each band as wide as fits in ``width``.

    ``cell(row, column)`` gives the content for ``keys[row]`` under ``headers[column]``;
    ``cell_width`` is the widest cell's length (the header's when larger).  Each band
    repeats the key column, so every row of every band is readable on its own.
    """
    key_width = max([len(key_header), *map(len, keys)])
    widths = [max(len(h), cell_width or 0) for h in headers]
    bands: list[list[int]] = [[]]
    used = key_width + 1
    for index, w in enumerate(widths):
        if bands[-1] and used + w + 1 > width:
            bands.append([])
            used = key_width + 1
        bands[-1].append(index)
        used += w + 1
    tables: list[RenderableType] = []
    for number, band in enumerate(bands):
        table = Table(
            title=title if number == 0 else None,
            box=None,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            header_style="bold",
            title_justify="left",
        )
        key_column(table, key_header, style="bold")
        for index in band:
            table.add_column(headers[index], no_wrap=True, overflow="ignore", justify=justify)  # type: ignore[arg-type]  # justify is one of rich's literals, chosen by the caller
        for row, _ in enumerate(keys):
            table.add_row(keys[row], *(cell(row, index) for index in band))
        tables.append(table)
    return tables


def _longest(value: Any) -> int:
    from rich.cells import cell_len

    return max((cell_len(word) for word in _text(value).plain.split()), default=0)


def _natural(value: Any) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in _text(value).plain.splitlines()), default=0)


def _hold_words(table: Table, width: int) -> Table:
    """Fix each column's width so that none is narrower than its longest word.

    Rich, narrowing a table, may give a column less than its longest word and cut it
    with "…"; here every column gets its longest word first, and what is left of
    ``width`` goes to the columns that want more, the most wanting first.
    """
    _, right, _, left = table.padding
    overhead = sum(left + right + 1 for _ in table.columns) + 1
    least = [max([_longest(c.header), *map(_longest, c._cells)]) for c in table.columns]
    want = [max([_natural(c.header), *map(_natural, c._cells)]) for c in table.columns]
    spare = width - overhead - sum(least)
    if sum(want) <= width - overhead:
        return table  # rich draws it at its natural width
    widths = list(least)
    while spare > 0:
        gaps = [w - have for w, have in zip(want, widths, strict=True)]
        widest = max(range(len(gaps)), key=lambda k: gaps[k])
        if gaps[widest] <= 0:
            break
        widths[widest] += 1
        spare -= 1
    for column, fixed in zip(table.columns, widths, strict=True):
        column.width = fixed
    return table


def fits(table: Table, width: int) -> bool:
    """Whether ``table`` can be drawn in ``width`` columns without cutting a word.

    Each column needs its longest word (header or cell) plus its padding and a border;
    rich, given less, cuts words with "…" (a name like ``gunicorn-gthread/bare_wsgi``
    is one word).
    """
    longest = _longest
    _, right, _, left = table.padding  # rich keeps it as (top, right, bottom, left)
    pad = left + right
    needed = sum(max([longest(c.header), *map(longest, c._cells)]) + pad + 1 for c in table.columns) + 1
    return needed <= width


def fit(table: Table, width: int) -> RenderableType:
    """``table`` itself when it fits ``width``; otherwise the same rows as records.

    A record is the row's first cell (its name: a target, a layer) on a line of its own,
    then ``header value`` pairs that wrap under it -- what ``psql``'s expanded display
    does for a table wider than the terminal.  Nothing is cut: every name and every
    figure is still there, only laid out downwards.
    """
    if fits(table, width):
        return _hold_words(table, width)
    from rich import box

    # First, the same table without its border and with one space between columns.
    lighter = (table.box, table.padding, table.pad_edge, table.show_edge)
    table.box, table.padding, table.pad_edge, table.show_edge = box.SIMPLE_HEAD, (0, 1, 0, 0), False, False
    if fits(table, width):
        return _hold_words(table, width)
    table.box, table.padding, table.pad_edge, table.show_edge = lighter
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    columns = table.columns
    rows = max((len(column._cells) for column in columns), default=0)
    parts: list[RenderableType] = []
    if table.title:
        parts.append(Text.from_markup(str(table.title), style="bold") if isinstance(table.title, str) else table.title)
    for row in range(rows):
        cells = [column._cells[row] if row < len(column._cells) else "" for column in columns]
        head = _text(cells[0])
        head.stylize("bold")
        parts.append(head)
        body = Text()
        for column, value in zip(columns[1:], cells[1:], strict=True):
            shown = _text(value)
            if not shown.plain.strip():
                continue
            if body.plain:
                body.append("  ")
            body.append(" ".join(str(column.header).split()) + " ", style="dim")
            body.append_text(shown)
        parts.append(Padding(body, (0, 0, 0, 2), expand=False))
    if table.caption:
        parts.append(
            Text.from_markup(str(table.caption), style="dim") if isinstance(table.caption, str) else table.caption
        )
    return Group(*parts)


def _text(value: Any) -> Any:
    from rich.text import Text

    if isinstance(value, Text):
        return value.copy()
    if isinstance(value, str):
        return Text.from_markup(value)
    return Text(str(value))
