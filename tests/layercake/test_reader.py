"""layercake.reader and the read/loc commands: the terminal side of reading the source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from layercake.cli import cli
from layercake.errors import LayercakeError, UnknownName
from layercake.figures import Cost, Figures, Throughput
from layercake.reader import SERVER_SOURCES, loc_table, render_diff, render_target, resolve
from layers import LAYERS

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def record(width: int) -> Console:
    return Console(record=True, width=width, color_system=None, highlight=False)


def test_resolve_a_path_inside_the_project():
    target = resolve(str(FIXTURES / "layer_a.py"))
    assert target.kind == "file" and target.files == [(FIXTURES / "layer_a.py").resolve()]
    assert target.description.startswith("Fixture layer A")


def test_resolve_refuses_paths_outside_the_project(tmp_path: Path):
    outside = tmp_path / "x.py"
    outside.write_text("x = 1\n")
    with pytest.raises(LayercakeError, match="outside the project"):
        resolve(str(outside))


def test_resolve_unknown_name_lists_the_choices():
    with pytest.raises(UnknownName) as info:
        resolve("flaskk")
    assert info.value.exit_code == 2
    assert "flask" in info.value.message and "scratch-asgi" in info.value.message


def test_third_party_server_names_what_can_be_read():
    with pytest.raises(LayercakeError, match="third-party server") as info:
        resolve("uvicorn")
    assert "scratch-wsgi" in info.value.message and info.value.exit_code == 2


def test_wide_terminal_sets_prose_beside_code():
    console = record(160)
    render_target(console, resolve(str(FIXTURES / "layer_a.py")), figures=Figures())
    text = console.export_text()
    # Prose on the left of the very line that shows the code it explains.
    row = next(line for line in text.splitlines() if "def plaintext(" in line)
    assert row.split("def plaintext(")[0].split()[0] == "Handlers"
    assert any("Answer Hello, World! as text/plain." in line and "start_response" in line for line in text.splitlines())


def test_narrow_terminal_puts_prose_above_code():
    console = record(90)
    render_target(console, resolve(str(FIXTURES / "layer_a.py")), figures=Figures())
    lines = console.export_text().splitlines()
    prose = next(i for i, line in enumerate(lines) if "Answer Hello, World! as text/plain." in line)
    code = next(i for i, line in enumerate(lines) if "def plaintext" in line)
    assert prose < code and "def plaintext" not in lines[prose]


def test_header_counts_lines_and_says_when_nothing_is_measured():
    console = record(120)
    target = resolve("bare_wsgi") if LAYERS["bare_wsgi"].source.exists() else None
    if target is None:
        pytest.skip("layers/bare_wsgi/app.py is not written yet")
    render_target(console, target, figures=Figures())
    text = console.export_text()
    assert "lines:" in text and "of code" in text
    assert "not measured yet" in text and "layercake bench --in-process" in text


def test_header_quotes_measured_figures_with_their_origin():
    if not LAYERS["bare_wsgi"].source.exists():
        pytest.skip("layers/bare_wsgi/app.py is not written yet")
    figures = Figures(
        costs={
            "bare_wsgi": Cost(
                "bare_wsgi",
                "json",
                12.5,
                321,
                87,
                {"layer": {"calls": 20}},
                "2026-11-29T01:00:00Z",
                "docs/bench/x.json",
            )
        },
        throughput=[
            Throughput(
                "bare_wsgi",
                "gunicorn-gthread",
                "json",
                64,
                3456.0,
                measured_at="2026-11-29T02:00:00Z",
                origin="docs/bench/y.json",
            )
        ],
    )
    console = record(120)
    render_target(console, resolve("bare_wsgi"), figures=figures)
    text = console.export_text()
    assert "12.5 µs" in text and "321 Python calls" in text and "87 distinct lines" in text
    assert "docs/bench/x.json" in text and "not measured" not in text
    assert "3,456 (bare_wsgi on gunicorn-gthread, json, c64)" in text and "docs/bench/y.json" in text


def test_diff_aligns_blocks_by_handler():
    console = record(160)
    render_diff(
        console, resolve(str(FIXTURES / "layer_a.py")), resolve(str(FIXTURES / "layer_b.py")), figures=Figures()
    )
    text = console.export_text()
    row = next(line for line in text.splitlines() if "def get_item(environ" in line)
    assert "def get_item(self, item_id)" in row  # the two get_items side by side on one line
    assert "(nothing here)" in text  # plaintext has no partner in B, health none in A


@pytest.mark.parametrize("name", [*LAYERS, *SERVER_SOURCES])
def test_read_every_layer_and_server(name: str):
    try:
        target = resolve(name)
    except LayercakeError as exc:
        pytest.skip(exc.message)
    console = record(140)
    render_target(console, target, figures=Figures())
    text = console.export_text()
    assert name in text and "lines:" in text
    assert len(text.splitlines()) > 50


def test_read_command_plain_when_not_a_tty():
    result = CliRunner().invoke(cli, ["read", str(FIXTURES / "layer_a.py")])
    assert result.exit_code == 0, result.output
    assert "def json_hello" in result.output and not ANSI.search(result.output)


def test_read_command_diff_needs_two_targets():
    result = CliRunner().invoke(cli, ["read", "--diff", str(FIXTURES / "layer_a.py")])
    assert result.exit_code == 2 and "exactly two" in result.output


def test_read_command_measures_a_layer_when_nothing_is_stored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr("layercake.figures.BENCH_DIR", tmp_path)  # no stored results
    result = CliRunner().invoke(cli, ["read", "bare_wsgi"])
    assert result.exit_code == 0, result.output
    assert "Python calls" in result.output and "measured just now" in result.output


def test_read_command_unknown_target_is_one_line():
    result = CliRunner().invoke(cli, ["read", "no-such-layer"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown layer, server or path 'no-such-layer'" in result.output


def test_read_command_diff_of_a_package_says_why_not():
    result = CliRunner().invoke(cli, ["read", "--diff", "core", "shared"])
    assert result.exit_code == 2
    assert "core is" in result.output and "files: read it without --diff" in result.output


def test_read_command_diff_of_fixtures():
    result = CliRunner().invoke(cli, ["read", "--diff", str(FIXTURES / "layer_a.py"), str(FIXTURES / "layer_b.py")])
    assert result.exit_code == 0, result.output
    assert "json_hello" in result.output


def test_loc_lists_every_layer():
    console = record(160)
    console.print(loc_table(Figures()))
    text = console.export_text()
    for name in LAYERS:
        assert name in text
    assert "not measured yet" in text


def test_loc_command_runs():
    result = CliRunner().invoke(cli, ["loc", "--no-measure"])
    assert result.exit_code == 0, result.output
    assert "bare_wsgi" in result.output


def test_diff_refuses_a_layer_beside_a_server() -> None:
    from click.testing import CliRunner

    from layercake.cli import cli

    result = CliRunner().invoke(cli, ["read", "--diff", "flask", "scratch-asgi"])
    assert result.exit_code == 2
    assert "two of a kind" in result.output and "Traceback" not in result.output
