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
            table.add_column(headers[index], no_wrap=True, overflow="ignore", justify=justify)  # type: ignore[arg-type]
        for row, _ in enumerate(keys):
            table.add_row(keys[row], *(cell(row, index) for index in band))
        tables.append(table)
    return tables
