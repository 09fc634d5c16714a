"""The contract over real HTTP for layer x server pairs, through ``layercake.grid``.

A pair passes when every case passes or fails for a reason the registry states
(``ServerSpec.gaps`` / ``servers.bridges.GAPS``).  The default run takes a quick subset:
each interface on our server, on a real server natively and through each bridge.  The
whole matrix (six layers x every installed server) is marked ``full``:
``pytest -m full tests/servers/test_grid.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layercake.grid import (
    Cell,
    Failure,
    Grid,
    environment,
    known_gap,
    render,
    run_grid,
    run_pair,
    to_markdown,
    write_outputs,
)
from layers import LAYERS, get_layer
from servers.registry import SERVERS, get_server

QUICK = [
    ("bare_wsgi", "scratch-wsgi"),
    ("bare_asgi", "scratch-asgi"),
    ("bare_wsgi", "gunicorn-gthread"),
    ("bare_asgi", "uvicorn"),
    ("flask", "uvicorn"),  # WSGI->ASGI bridge
    ("fastapi", "gunicorn-gthread"),  # ASGI->WSGI bridge, lifespan driven by the bridge
]


def _check(layer: str, server: str) -> None:
    spec = get_server(server)
    if not spec.available:
        pytest.skip(f"{server}: package {spec.missing.package!r} not installed")  # type: ignore[union-attr]
    cell = run_pair(get_layer(layer), spec)
    assert cell.groups, f"{layer} on {server} never served: {cell.reason}"
    assert not cell.unexplained, "\n".join(f"{f.group}/{f.case}: {f.detail}" for f in cell.unexplained)


@pytest.mark.parametrize(("layer", "server"), QUICK, ids=[f"{lay}-on-{srv}" for lay, srv in QUICK])
def test_contract_over_real_http(layer: str, server: str) -> None:
    _check(layer, server)


FULL = [(lay, srv) for lay in LAYERS for srv in SERVERS if (lay, srv) not in QUICK]


@pytest.fixture(scope="module")
def full_grid() -> Grid:
    """Every pair at once, two at a time (``run_grid``): half the wall time of one by one.

    Most of it is waiting, not CPU: waitress reads a declared body before the app can
    refuse it, and the contract's client gives up after 30 s (a known gap).
    """
    return run_grid(jobs=2)


@pytest.mark.full
@pytest.mark.timeout(1200)  # the first test pays for the whole grid (about 4 minutes on two cores)
@pytest.mark.parametrize(("layer", "server"), FULL, ids=[f"{lay}-on-{srv}" for lay, srv in FULL])
def test_contract_over_real_http_full_matrix(full_grid: Grid, layer: str, server: str) -> None:
    cell = full_grid.cell(layer, server)
    assert cell is not None
    if cell.status == "n/a":
        pytest.skip(cell.reason)
    assert cell.groups, f"{layer} on {server} never served: {cell.reason}"
    assert not cell.unexplained, "\n".join(f"{f.group}/{f.case}: {f.detail}" for f in cell.unexplained)


def test_known_gaps_come_from_the_registry_and_the_bridges() -> None:
    assert "HTTP/1.0" in (known_gap(get_server("wsgiref"), None, "stream") or "")
    assert (known_gap(get_server("gunicorn-gthread"), "asgi->wsgi", "ws_echo") or "").startswith("asgi->wsgi bridge")
    assert known_gap(get_server("uvicorn"), None, "ws_echo") is None  # uvicorn must pass it


def test_grid_output_names_every_failure_and_its_reason(tmp_path: Path) -> None:
    cells = [
        Cell(
            "bare_wsgi",
            "wsgiref",
            None,
            "partial",
            {"http": (15, 15), "streaming": (1, 2)},
            [Failure("stream", "streaming", "not chunked", "wsgiref: HTTP/1.0 server")],
        ),
        Cell(
            "bare_asgi",
            "wsgiref",
            "asgi->wsgi",
            "partial",
            {"http": (14, 15)},
            [Failure("headers", "http", "joined wrong", None)],
        ),
        Cell("flask", "hypercorn", "wsgi->asgi", "n/a", reason="not installed: hypercorn"),
    ]
    grid = Grid(["bare_wsgi", "bare_asgi", "flask"], ["wsgiref", "hypercorn"], cells, environment())
    assert cells[0].summary() == "◐ 16/17 streaming 1/2"
    markdown = to_markdown(grid)
    # servers as rows, layers as columns
    assert "| server | bare_wsgi | bare_asgi | flask |" in markdown
    assert "| wsgiref | ◐ 16/17 streaming 1/2 | ◐ 14/15 http 14/15 ⇄ asgi->wsgi |" in markdown
    assert "known -- wsgiref: HTTP/1.0 server" in markdown and "UNEXPLAINED -- joined wrong" in markdown
    assert "n/a not installed: hypercorn" in markdown
    write_outputs(grid, tmp_path / "g.json", tmp_path / "g.md")
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["cells"][0]["groups"]["streaming"] == [1, 2] and data["cells"][0]["passed"] == 16
    assert "a2wsgi" in data["environment"]["packages"]
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render(grid))
    assert "UNEXPLAINED" in console.export_text()


FAST = {"scratch-asgi": {"http": "httptools", "loop": "uvloop"}, "scratch-wsgi": {"http": "httptools"}}
#: The bare layers and the top framework of each interface in the default run; the other layers with -m full.
FAST_DEFAULT = {"bare_wsgi", "bare_asgi", "flask", "fastapi"}
FAST_PAIRS = [
    pytest.param(lay, srv, id=f"{lay}-on-{srv}-fast", marks=() if lay in FAST_DEFAULT else pytest.mark.full)
    for srv in FAST
    for lay in LAYERS
]


@pytest.mark.parametrize(("layer", "server"), FAST_PAIRS)
def test_contract_on_our_servers_fast_pair(layer: str, server: str) -> None:
    """Every layer on our servers with the C parser (and uvloop): the same contract as on h11."""
    from servers.registry import ServerOptions

    pytest.importorskip("httptools", reason="--http httptools needs the servers extra")
    pytest.importorskip("uvloop", reason="--loop uvloop needs the servers extra")
    cell = run_pair(get_layer(layer), get_server(server), ServerOptions(**FAST[server]))  # type: ignore[arg-type]
    assert cell.groups, f"{layer} on {server} never served: {cell.reason}"
    assert "--http httptools" in cell.native_command, cell.native_command
    assert not cell.unexplained, "\n".join(f"{f.group}/{f.case}: {f.detail}" for f in cell.unexplained)
