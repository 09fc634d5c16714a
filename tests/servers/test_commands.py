"""The ``servers`` and ``grid`` commands, through click's runner (the library calls they wrap
have their own tests; these check the wiring, the output and the exit status)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from layercake.cli import cli
from servers.registry import SERVERS


def test_servers_lists_every_entry_with_its_command() -> None:
    result = CliRunner().invoke(cli, ["servers"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for name, spec in SERVERS.items():
        assert name in result.output
        assert spec.pattern().split()[0] in result.output
    assert "asgi->wsgi bridge" in result.output and "wsgiref: Cannot take chunked uploads" in result.output


def test_servers_fits_an_80_column_terminal() -> None:
    # The full table wrapped every cell into word fragments below ~200 columns (350 lines
    # at 80): a narrow terminal gets the capabilities as a table and the rest as a list.
    from rich.cells import cell_len

    result = CliRunner().invoke(cli, ["servers", "--no-notes"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= 80
    assert len(lines) <= 100  # was 350
    header = next(line for line in lines if line.startswith("server "))
    assert header.split() == ["server", "interface", "installed", "keep-alive", "ws", "lifespan", "workers", "threads"]
    for name, spec in SERVERS.items():
        assert any(line.startswith(name + " ") for line in lines)
        assert "$ " + spec.pattern().split()[0] in result.output


def test_grid_runs_a_pair_and_writes_json_and_markdown(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "grid.json", tmp_path / "grid.md"
    result = CliRunner().invoke(
        cli,
        [
            "grid",
            "--layers",
            "bare_wsgi",
            "--servers",
            "wsgiref,gunicorn-gthread",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        env={"COLUMNS": "200"},
    )
    data = json.loads(out_json.read_text())
    cells = {c["server"]: c for c in data["cells"]}
    # wsgiref's gaps are all known, so the command succeeds while showing them
    assert result.exit_code == 0, result.output
    assert cells["gunicorn-gthread"]["status"] == "pass"
    assert cells["wsgiref"]["status"] == "partial"
    assert {f["case"] for f in cells["wsgiref"]["failures"]} >= {"stream", "echo"}
    assert all(f["known"] for f in cells["wsgiref"]["failures"])
    assert "| wsgiref | ◐" in out_md.read_text() and "HTTP/1.0" in out_md.read_text()
    assert "what fails, and why" in result.output


def test_grid_where_no_pair_could_run_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every named server not installed: the grid was all "n/a" and exited 0.
    from servers import registry

    ghost = dataclasses.replace(registry.SERVERS["waitress"], requires=(registry.Requirement("no_such_xyz", "ghost"),))
    monkeypatch.setitem(registry.SERVERS, "waitress", ghost)
    result = CliRunner().invoke(cli, ["grid", "--layers", "bare_wsgi", "--servers", "waitress"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "not installed" in result.output and "no pair could run" in result.output


def test_grid_unknown_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["grid", "--servers", "tomcat"])
    assert result.exit_code == 2 and "unknown server 'tomcat'" in result.output
