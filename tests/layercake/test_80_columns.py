"""Every command's output at 80 columns, as a pipe or a narrow terminal gets it: no line
wider than 80, and no name cut short with "…" (layer names, servers, case ids, environ keys).

The commands run through click's runner with ``COLUMNS=80`` (what a pipe falls back to),
for real: servers are started where the command starts them.  The grid and the probe
comparison are also rendered from synthetic results over *every* registered server, the
widest case, without running thirteen servers.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from layercake.cli import cli
from layercake.grid import Cell, Failure, Grid, environment, render
from layercake.probe import CaseResult, ServerProbe
from layers import LAYERS
from servers.registry import SERVERS

# A word cut by rich ends in "…" right after a letter, digit, "_" or "-".  Two deliberate
# elisions are not cuts: the tracer masks memory addresses as "0x…" (so servers compare
# equal), and the call tree says "… N calls below" with the ellipsis on its own.
_CUT = re.compile(r"[\w\-]…")
_ADDRESS = "0x…"


def assert_fits(text: str, what: str) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        assert cell_len(line) <= 80, f"{what}: line {number} is {cell_len(line)} columns:\n{line}"
        assert not _CUT.search(line.replace(_ADDRESS, "")), f"{what}: line {number} cuts a name:\n{line}"


COMMANDS = {
    "layers": ["layers"],
    "tour": ["tour", "--seconds", "0.05"],
    "verify": ["verify", "bare_wsgi"],
    "verify-server": ["verify", "flask", "--server", "uvicorn", "--group", "websocket"],
    "servers": ["servers"],
    "read": ["read", "flask", "--no-pager", "--no-measure"],
    "read-server": ["read", "scratch-asgi", "--no-pager", "--no-measure"],
    "read-diff": ["read", "--diff", "bare_asgi", "starlette", "--no-pager", "--no-measure"],
    "loc": ["loc", "--no-measure"],
    "trace": ["trace", "bare_wsgi", "GET", "/json"],
    "scope-diff": ["scope-diff", "bare_asgi", "GET", "/inspect", "--servers", "scratch-asgi,uvicorn"],
    "lifespan": ["lifespan", "starlette", "--server", "uvicorn"],
    "grid": ["grid", "--layers", "bare_wsgi", "--servers", "wsgiref,scratch-wsgi"],
    "probe-one": ["probe", "wsgiref", "--case", "valid/get", "--case", "smuggling/cl-te"],
    "probe-grid": ["probe", "scratch-wsgi", "wsgiref", "--case", "valid/get", "--case", "smuggling/cl-te"],
    "soak": ["soak", "bare_wsgi", "--duration", "1", "--concurrency", "4"],
    "bench-in-process": [
        "bench",
        "--in-process",
        "--layers",
        "bare_wsgi,flask",
        "--endpoints",
        "json",
        "--seconds",
        "0.05",
    ],
    "bench-compare": ["bench", "--compare", "docs/bench/ladder.json", "docs/bench/ladder.json"],
}


def test_a_pipe_without_columns_gets_80(monkeypatch: pytest.MonkeyPatch) -> None:
    # No COLUMNS and not a terminal: 80, not the 140 or 160 some commands used to force.
    monkeypatch.delenv("COLUMNS", raising=False)
    for args in (["read", "flask", "--no-pager", "--no-measure"], ["layers"], ["servers", "--no-notes"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert_fits(result.output, " ".join(args))


@pytest.mark.parametrize("args", list(COMMANDS.values()), ids=list(COMMANDS))
def test_command_output_fits_80_columns(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code in (0, 1), result.output  # 1: a probe case a server fails is still output
    assert "Traceback" not in result.output
    assert_fits(result.output, " ".join(args))


def test_the_whole_grid_fits_80_columns() -> None:
    # Every layer on every registered server, with bridges, partial cells and failures.
    cells = []
    for layer in LAYERS.values():
        for spec in SERVERS.values():
            bridge = spec.bridge_for(layer.interface)
            cells.append(
                Cell(
                    layer.name,
                    spec.name,
                    bridge,
                    "partial",
                    {"http": (16, 17), "upload": (1, 2)},
                    [Failure("echo_too_large", "upload", "timed out", f"{spec.name}: buffers the whole body first")],
                )
            )
    grid = Grid(list(LAYERS), list(SERVERS), cells, environment())
    console = Console(record=True, width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(grid, 80))
    text = console.export_text()
    assert_fits(text, "grid")
    for name in [*SERVERS, *LAYERS]:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), f"{name} missing or cut"


def test_the_probe_comparison_over_every_server_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from layercake.commands import hardening
    from layercake.corpus import load_corpus

    cases = load_corpus()
    probes = [
        ServerProbe(
            name,
            "bare_wsgi",
            "cmd",
            [CaseResult(c.id, "whole", "400", True, [200], False, True) for c in cases],
        )
        for name in SERVERS
    ]
    console = Console(record=True, width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    monkeypatch.setattr(hardening, "console", console)
    hardening._print_grid(probes)
    text = console.export_text()
    assert_fits(text, "probe grid")
    longest = max(cases, key=lambda c: len(c.id))
    assert longest.id in text  # a case id is never cut


def test_a_table_too_wide_for_80_columns_becomes_records_and_keeps_every_value() -> None:
    from rich.table import Table

    from layercake import terminal

    table = Table(title="wide")
    headers = ["target", *[f"measure-{n}" for n in range(9)]]
    for header in headers:
        table.add_column(header)
    table.add_row("gunicorn-gthread/bare_wsgi", *[f"{n}.5k" for n in range(9)])
    console = Console(record=True, width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(terminal.fit(table, 80))
    text = console.export_text()
    assert_fits(text, "records")
    assert "gunicorn-gthread/bare_wsgi" in text
    for n in range(9):
        assert f"measure-{n} {n}.5k" in " ".join(text.split())


def test_a_table_that_fits_is_drawn_as_a_table_with_no_word_cut() -> None:
    from rich.table import Table

    from layercake import terminal

    table = Table()
    for header in ("layer", "endpoint", "calls by package"):
        table.add_column(header)
    table.add_row("bare_wsgi", "json", "layer 4, driver 4, werkzeug 102, flask 39, stdlib 22, other 12 " * 2)
    console = Console(record=True, width=80, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(terminal.fit(table, 80))
    text = console.export_text()
    assert_fits(text, "table")
    assert "endpoint" in text and "bare_wsgi" in text and "werkzeug" in text
