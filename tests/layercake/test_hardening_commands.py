"""``layercake probe`` and ``layercake soak``, and the library code under them.

The corpus loader and the probe's response reader with plain bytes; then short real
runs: a probe of both scratch servers (and of wsgiref, which must *fail* some cases --
a probe that cannot report a failure proves nothing), and a two-second soak of each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from layercake.cli import cli
from layercake.corpus import CorpusError, decode_raw, load_corpus, parse_case, select
from layercake.probe import ResponseError, parse_response, probe_servers
from layercake.soak import process_fds, process_rss, soak

SOME = [
    "valid/get",
    "valid/post-chunked",
    "smuggling/cl-te",
    "reqline/http2-version",
    "limits/too-many-fields",
    "pipelining/head-then-get",
    "host/missing",
]


# --- the corpus format -----------------------------------------------------------------


def test_decode_raw_escapes_and_repetition() -> None:
    text = "GET / HTTP/1.1\\r\\n\nX: \\t\\0\\x7f\\s\\\\\\r\\n\n\\*3{a\\*2{b}}\\r\\n"
    assert decode_raw(text) == b"GET / HTTP/1.1\r\nX: \t\x00\x7f \\\r\nabbabbabb\r\n"


@pytest.mark.parametrize("raw", ["\\q", "abc\\", "\\*2{ab"])
def test_decode_raw_refuses_what_it_cannot_read(raw: str) -> None:
    with pytest.raises(CorpusError):
        decode_raw(raw)


def test_parse_case_reads_every_key() -> None:
    case = parse_case(
        "description: d\nrule: RFC 9112 §3\nexpect: 200 400|505\nclose: any\nmethods: HEAD GET\n\n"
        "HEAD / HTTP/1.1\\r\\n\n\\r\\n\n",
        "pipelining.example.http",
    )
    assert case.id == "pipelining/example" and case.category == "pipelining"
    assert case.expect == (frozenset({200}), frozenset({400, 505})) and case.expect_text() == "200 400|505"
    assert case.close is None and case.is_head(0) and not case.is_head(1)
    assert case.raw == b"HEAD / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "text",
    [
        "rule: r\nexpect: 200\nclose: yes\n\nGET",
        "description: d\nrule: r\nexpect: x\nclose: yes\n\nGET",
        "description: d\nrule: r\nexpect: 200\nclose: maybe\n\nGET",
    ],
)
def test_parse_case_refuses_malformed_files(text: str) -> None:
    with pytest.raises(CorpusError):
        parse_case(text, "valid.x.http")


def test_shipped_corpus_loads_and_selects() -> None:
    cases = load_corpus()
    assert len(cases) >= 60 and len({case.id for case in cases}) == len(cases)
    assert [case.id for case in select(cases, ["valid/get"])] == ["valid/get"]


# --- the response reader ---------------------------------------------------------------


def test_parse_response_framings() -> None:
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiNEXT")[1] == len(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    )
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1;x\r\n!\r\n0\r\n\r\n"
    response, used = parse_response(chunked + b"NEXT")
    assert response.body == b"hi!" and used == len(chunked)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"
    assert parse_response(head, head_request=True)[1] == len(head)
    assert parse_response(b"HTTP/1.1 204 No Content\r\n\r\n")[0].status == 204
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi") is None
    assert parse_response(b"HTTP/1.0 200 OK\r\n\r\nuntil close", eof=True)[0].body == b"until close"
    with pytest.raises(ResponseError):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ResponseError):
        parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", eof=True)


def test_proc_measurements_of_this_process() -> None:
    assert process_rss(os.getpid()) > 1024 * 1024
    assert process_fds(os.getpid()) >= 3
    assert process_rss(2**22 + 12345) == 0 and process_fds(2**22 + 12345) == 0


# --- real runs ---------------------------------------------------------------------------


def test_probe_scratch_servers_pass_every_split() -> None:
    cases = select(load_corpus(), SOME)
    probes = probe_servers(
        ["scratch-wsgi", "scratch-asgi"], cases, splits=("whole", "bytes", "random"), timeout=10.0, close_wait=5.0
    )
    for probe in probes:
        assert not probe.skipped, probe.skipped
        assert probe.layer == {"scratch-wsgi": "bare_wsgi", "scratch-asgi": "bare_asgi"}[probe.server]
        failed = [(r.case_id, r.split, r.problems()) for r in probe.results if not r.passed]
        assert not failed
        assert len(probe.results) == len(cases) * 3


def test_probe_reports_a_lenient_server() -> None:
    # wsgiref answers an HTTP/1.1 request without Host, and keeps no limits: the probe must say so.
    probes = probe_servers(["wsgiref"], select(load_corpus(), ["host/missing", "valid/get"]))
    results = {r.case_id: r for r in probes[0].results}
    assert results["valid/get"].statuses == [200]
    assert not results["host/missing"].passed
    assert "expected 400" in results["host/missing"].problems()[0]


def test_probe_command_grid_and_json(tmp_path: Path) -> None:
    out, markdown = tmp_path / "probe.json", tmp_path / "probe.md"
    result = CliRunner().invoke(
        cli,
        [
            "probe",
            "scratch-wsgi",
            "--servers",
            "scratch-asgi",
            "--case",
            "valid/get",
            "--case",
            "smuggling/cl-te",
            "--json",
            str(out),
            "--markdown",
            str(markdown),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scratch-wsgi" in result.output and "scratch-asgi" in result.output and "2/2" in result.output
    data = json.loads(out.read_text())
    assert [d["server"] for d in data] == ["scratch-wsgi", "scratch-asgi"]
    assert all(r["passed"] for d in data for r in d["results"])
    table = markdown.read_text().splitlines()
    assert table[0] == "| server | smuggling | valid | as expected |"  # the summary: servers as rows
    assert "| scratch-wsgi | 1/1 | 1/1 | 2/2 |" in table
    assert "| case | expect | scratch-wsgi | scratch-asgi |" in table
    assert "| smuggling/cl-te | 400 / close | 400 ✓ | 400 ✓ |" in table and table[-1].endswith("| 2/2 | 2/2 |")


def test_probe_command_refuses_unknown_names() -> None:
    result = CliRunner().invoke(cli, ["probe", "no-such-server"])
    assert result.exit_code == 2 and "unknown server" in result.output
    result = CliRunner().invoke(cli, ["probe", "scratch-wsgi", "--case", "no-such-case"])
    assert result.exit_code == 2 and "no corpus case" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["scratch-wsgi", "--servers", "no-such-server"],
        ["scratch-wsgi", "--layer", "nope"],
        ["scratch-wsgi", "--timeout", "0"],
        ["scratch-wsgi", "--timeout", "-1"],
    ],
)
def test_probe_command_refuses_mistakes_before_starting_a_server(args: list[str]) -> None:
    # Each of these once started a server first: the second name failed after the first
    # was probed, a wrong --layer showed up as "skipped" with exit 0, --timeout -1 was a
    # ValueError traceback from the socket module.
    result = CliRunner().invoke(cli, ["probe", *args, "--case", "valid/get"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cases x" not in result.output


def test_probe_command_fails_when_no_server_could_be_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    # An uninstalled server is skipped; when every server was, exit 0 read as "all probed".
    from layercake.commands import hardening
    from layercake.probe import ServerProbe

    monkeypatch.setattr(
        hardening,
        "probe_servers",
        lambda names, *args, probes: probes.extend(
            ServerProbe(name, "bare_wsgi", skipped="server needs a package") for name in names
        ),
    )
    result = CliRunner().invoke(cli, ["probe", "waitress", "--case", "valid/get"])
    assert result.exit_code == 1, result.output
    assert "waitress: skipped" in result.output and "no server could be probed" in result.output


@pytest.mark.parametrize(("layer", "server"), [("bare_wsgi", "scratch-wsgi"), ("bare_asgi", "scratch-asgi")])
def test_two_second_soak(layer: str, server: str) -> None:
    report = soak(layer, server, duration=2, concurrency=16, interval=0.25)
    assert report.requests > 0 and report.errors == {}, report.errors
    assert report.leaked_fds == 0, (report.fds_before, report.fds_after)
    assert len(report.samples) >= 4 and all(s.rss > 0 for s in report.samples)
    assert report.ok
    timeline = report.timeline(4)
    assert len(timeline) == 4 and timeline[0] is report.samples[0] and timeline[-1] is report.samples[-1]
    assert {"GET /plaintext 200", "POST /echo 200", "GET /items/abc 422", "GET /no/such/path 404"} <= set(
        report.statuses
    )


def test_soak_command(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = CliRunner().invoke(cli, ["soak", "bare_asgi", "--duration", "1", "--concurrency", "8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "soak passed" in result.output and "file descriptors" in result.output and "RSS and fds" in result.output
    data = json.loads(out.read_text())
    assert data["ok"] and data["server"] == "scratch-asgi" and data["requests"] > 0


def test_soak_command_refuses_nonsense() -> None:
    result = CliRunner().invoke(cli, ["soak", "bare_wsgi", "--duration", "0"])
    assert result.exit_code == 2


@pytest.mark.parametrize("args", [["--interval", "0"], ["--interval", "-1"], ["--server", "no-such-server"]])
def test_soak_command_refuses_mistakes_in_one_line(args: list[str]) -> None:
    # --interval 0 was a ZeroDivisionError; an unknown server was refused only after the banner.
    result = CliRunner().invoke(cli, ["soak", "bare_wsgi", "--duration", "1", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not result.output.startswith("soak:")
    assert result.output.startswith("layercake: ")
