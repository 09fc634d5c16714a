"""Tracing over real servers: one request each, on random loopback ports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from layercake.cli import cli
from layercake.trace import lifespan, render, scope_diff, trace
from layercake.trace.model import STEPS
from layercake.trace.run import PROCESS_ENV_ROW, build_request, exchange
from layers import LAYERS
from servers.registry import ServerOptions
from servers.supervise import start_server

_DATE = re.compile(rb"(?im)^date: [^\r\n]*\r\n")


def _plain_response(server: str, layer: str, method: str, path: str, http: str | None) -> bytes:
    """What a plain client gets from the untraced server, for the same request bytes."""
    with start_server(server, layer, ServerOptions(http=http)) as srv:
        return exchange(srv.host, srv.port, build_request(method, path, f"{srv.host}:{srv.port}"))


@pytest.mark.parametrize("server", ["scratch-asgi", "uvicorn"])
def test_fastapi_get_item_trace_has_every_step_in_order(server: str) -> None:
    http = "h11" if server == "uvicorn" else None  # so that its parser can be observed
    t = trace("fastapi", server, "GET", "/items/1", http=http)
    assert t.steps == list(STEPS)  # all six, in request order
    assert t.request_bytes.startswith(b"GET /items/1 HTTP/1.1\r\n")
    assert t.scope is not None and t.scope["path"] == "/items/1" and t.scope["type"] == "http"
    calls = t.calls("asgi")
    assert calls.index("send() http.response.start") < calls.index("send() http.response.body")
    assert {"fastapi", "pydantic", "starlette"} <= set(t.packages())
    # h11 saw our request before the app was called, and the response after
    events = t.parser["events"]
    request = next(e for e in events if e.get("event") == "Request")
    assert request["target"] == "/items/1" and request["t_ns"] < 0
    # h11 writes uvicorn's response; ours are written by hand (servers/core/writer.py)
    assert any((e.get("event") == "Response" or e["op"] == "ResponseWriter.start") and e["t_ns"] > 0 for e in events)
    if server == "scratch-asgi":  # our server: the strict head checks come before h11
        assert t.parser["observed"] == "head reader + h11 + writer"
        assert events[0]["op"] == "HeadReader.feed" and events[0]["event"].startswith("head complete")
    # one clock: parser, interface and call tree interleave in the order the request took
    steps = [(row["source"], row.get("event") or row.get("call")) for row in t.timeline()]
    expected = [
        ("parser", "Request"),
        ("interface", "app(scope, receive, send)"),
        ("call tree", "first call into fastapi"),
        ("call tree", "first call into layer"),
        ("interface", "send()"),
    ]
    assert [steps.index(step) for step in expected] == sorted(steps.index(step) for step in expected)
    # the path from the server to the handler is shown however small --depth is
    console = Console(record=True, width=300)
    console.print(render.call_tree(t, depth=2))
    assert "get_item" in console.export_text()
    # tracing does not change the response
    assert t.response["status"] == 200
    plain = _plain_response(server, "fastapi", "GET", "/items/1", http)
    assert _DATE.sub(b"", t.response_bytes) == _DATE.sub(b"", plain)


def test_wsgi_layer_on_an_asgi_server_shows_the_bridge_and_the_thread_switch() -> None:
    t = trace("flask", "uvicorn", "GET", "/json")
    assert t.bridge == "wsgi->asgi"
    assert t.server_process["interfaces"] == ["asgi", "wsgi"]  # a recorder on each side of the bridge
    assert t.scope is not None and t.environ is not None
    assert "bridge" in t.packages() and "flask" in t.packages()
    by_call = {e["call"]: e for e in t.conversation}
    loop_thread = by_call["app(scope, receive, send)"]["thread"]
    app_thread = by_call["app(environ, start_response)"]["thread"]
    assert app_thread != loop_thread  # a2wsgi runs the WSGI app in its executor
    assert set(t.threads()) >= {loop_thread, app_thread}
    assert t.response["status"] == 200 and t.response["body"] == '{"message":"Hello, World!"}'


def test_django_on_asgi_shows_its_thread_hops_and_django_on_wsgi_none() -> None:
    t = trace("django_asgi", "scratch-asgi", "GET", "/json")
    hops = t.profile["hops"]
    assert t.profile["hop_count"] >= 2 and len(hops) == t.profile["hop_count"]
    # each sync part: the event loop hands it to an executor thread through sync_to_async
    first = hops[0]
    assert first["from"] == t.profile["origin_thread"] and first["to"] != first["from"]
    assert first["via"] == "BaseEventLoop.run_in_executor" and first["handed_by"][0].startswith("SyncToAsync.__call__")
    assert any("(django)" in work for hop in hops for work in hop["work"])
    console = Console(record=True, width=200)
    console.print(render.render_trace(t))
    assert f"thread hops (work handed to another thread): {t.profile['hop_count']}" in console.export_text()
    assert trace("django", "scratch-wsgi", "GET", "/json").profile["hop_count"] == 0


def test_scope_diff_finds_known_differences_between_wsgiref_and_scratch_wsgi() -> None:
    diff = scope_diff("bare_wsgi", ["scratch-wsgi", "wsgiref"], "GET", "/inspect?x=1")
    # wsgiref serves one request at a time and starts each environ from os.environ (as CGI did)
    assert "wsgi.multithread" in diff.differing
    assert PROCESS_ENV_ROW in diff.differing
    rows = {row["key"]: row["values"] for row in diff.rows}
    assert rows["wsgi.multithread"] == {"scratch-wsgi": True, "wsgiref": False}
    # what PEP 3333 pins down, they agree on
    for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "wsgi.url_scheme"):
        assert key not in diff.differing, key
    assert rows["QUERY_STRING"]["wsgiref"] == "x=1"


def test_lifespan_startup_precedes_the_first_request_and_shutdown_comes_at_exit() -> None:
    record = lifespan("starlette", "uvicorn")
    kinds = record.kinds()
    assert record.started
    order = [
        kinds.index(k)
        for k in (
            "app loaded",
            "receive() lifespan.startup",
            "send() lifespan.startup.complete",
            "request GET /health",
            "receive() lifespan.shutdown",
            "send() lifespan.shutdown.complete",
        )
    ]
    assert order == sorted(order)
    assert record.probe is not None and '"startup_complete":true' in record.probe["body"]


def test_lifespan_startup_failure_stops_the_server() -> None:
    record = lifespan("bare_asgi", "scratch-asgi", mode="fail-startup")
    assert not record.started
    assert "send() lifespan.startup.failed" in record.kinds()
    assert "request GET /health" not in record.kinds()


@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_layer_traces_on_its_scratch_server(layer: str, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    page = tmp_path / "trace.html"
    result = CliRunner().invoke(
        cli, ["trace", layer, "GET", "/json", "--json", str(out), "--html", str(page), "--depth", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "6. response bytes" in result.output
    assert '"status": 200' in out.read_text() or '"status":200' in out.read_text()
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<details" in html and "<script" not in html


def test_no_profile_keeps_the_conversation_and_drops_the_call_tree() -> None:
    t = trace("bare_wsgi", "wsgiref", "GET", "/stream?n=3", profile=False)
    assert "call tree" not in t.steps
    assert t.calls() == [
        "app(environ, start_response)",
        "start_response",
        "iterable chunk",
        "iterable chunk",
        "iterable chunk",
        "iterable exhausted",
        "close()",
    ]
    assert t.parser["observed"] == "http.server"
    assert t.response["body"] == "chunk 0\nchunk 1\nchunk 2\n" and t.response["framing"] == "close-delimited"


def test_uvicorn_default_parser_shows_httptools_callbacks() -> None:
    t = trace("starlette", "uvicorn", "POST", "/echo", body=b"hello")
    assert t.parser["observed"] == "httptools"
    ops = [e["op"].removeprefix("httptools.") for e in t.parser["events"]]
    assert ops[:3] == ["data_received", "on_message_begin", "on_url"]
    assert ops.index("on_headers_complete") < ops.index("on_body") < ops.index("on_message_complete")
    # llhttp hands over header names as sent; uvicorn lowercases them for the scope
    assert "Content-Length: 5" in [e.get("header") for e in t.parser["events"]]
    assert [b"content-length", b"5"] in [[k.encode(), v.encode()] for k, v in t.scope["headers"]]


@pytest.mark.parametrize("layer", ["bare_asgi", "bare_wsgi"])
def test_our_servers_on_httptools_show_llhttps_callbacks_after_the_gate(layer: str) -> None:
    pytest.importorskip("httptools")
    server = "scratch-asgi" if layer == "bare_asgi" else "scratch-wsgi"
    t = trace(layer, server=server, method="GET", path="/plaintext", http="httptools")
    assert t.parser["observed"] == "head reader + httptools + writer"
    ops = [e["op"] for e in t.parser["events"]]
    assert ops[0] == "HeadReader.feed"  # the gate sees the head before llhttp does
    callbacks = [op.removeprefix("httptools.") for op in ops if op.startswith("httptools.")]
    assert callbacks[:3] == ["receive_data", "on_message_begin", "on_url"]
    assert "on_headers_complete" in callbacks and callbacks[-1] == "on_message_complete"
    complete = next(e for e in t.parser["events"] if e["op"] == "httptools.on_headers_complete")
    assert (complete["method"], complete["target"]) == ("GET", "/plaintext")


def test_websocket_trace_shows_the_handshake_then_wsproto_frames() -> None:
    t = trace("bare_asgi", "scratch-asgi", "GET", "/ws", websocket="hello")
    assert t.response["status"] == 101
    assert [f["event"] for f in t.response["websocket"]] == ["AcceptConnection", "TextMessage", "CloseConnection"]
    assert t.calls() == [
        "app(scope, receive, send)",
        "receive() websocket.connect",
        "send() websocket.accept",
        "receive() websocket.receive",
        "send() websocket.send",
        "receive() websocket.disconnect",
    ]
    ops = [e["op"] for e in t.parser["events"]]
    assert ops.index("next_event") < ops.index("ws.receive_data")  # h11 for the handshake, then wsproto
    assert t.parser["observed"].startswith("head reader + h11") and t.parser["observed"].endswith("wsproto")


def test_websocket_to_a_wsgi_layer_is_refused_with_404() -> None:
    t = trace("flask", "scratch-wsgi", "GET", "/ws", websocket="hello")
    assert t.response["status"] == 404  # CONTRACT.md #14: WSGI cannot hold the connection open
    assert t.response["websocket"][0] == {"event": "RejectConnection", "status_code": 404}


SMUGGLE = b"POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"


def test_a_request_our_server_refuses_is_traced_without_the_app() -> None:
    # RFC 9112 §6.1: Content-Length with Transfer-Encoding is a smuggling vector; strict.py refuses it.
    t = trace("bare_wsgi", "scratch-wsgi", raw=SMUGGLE)
    assert t.response["status"] == 400
    assert not t.server_process["app_called"] and t.environ is None and t.conversation == []
    [event] = [e for e in t.parser["events"] if e["op"] == "HeadReader.feed"]
    assert event["status"] == 400 and event["rule"].startswith("RFC 9112")
    console = Console(record=True, width=200)
    console.print(render.render_trace(t))
    assert "never called" in console.export_text()


def test_wsgiref_hands_the_same_request_to_the_app() -> None:
    # ...where wsgiref trusts Content-Length and passes the chunked framing through as the body.
    t = trace("bare_wsgi", "wsgiref", raw=SMUGGLE)
    assert t.server_process["app_called"]
    assert t.environ is not None and t.environ["CONTENT_LENGTH"] == "5"
    assert t.environ["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert t.response["body"] == "0\r\n\r\n"


def test_cli_scope_diff_and_lifespan_write_json(tmp_path: Path) -> None:
    out = tmp_path / "diff.json"
    result = CliRunner().invoke(
        cli, ["scope-diff", "bare_asgi", "/inspect", "--servers", "scratch-asgi,uvicorn", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "keys differ" in result.output
    assert json.loads(out.read_text())["servers"] == ["scratch-asgi", "uvicorn"]
    out = tmp_path / "lifespan.json"
    result = CliRunner().invoke(cli, ["lifespan", "bare_asgi", "--server", "scratch-asgi", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "startup completed before the first request" in result.output
    assert json.loads(out.read_text())["started"] is True


def test_cli_refuses_a_bad_request_line_with_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["trace", "fastapi", "GET", "/json", "extra"])
    assert result.exit_code == 2
    assert "expected [METHOD] PATH" in result.output


@pytest.mark.parametrize("header", ["X-A: b\r\nEvil: 1", "X-A: b\nEvil: 1", "X-A: b\0", "X A: b", "X(A): b"])
def test_cli_refuses_a_malformed_header_before_sending_it(header: str) -> None:
    # A CR/LF in a value used to go out as a second header line; a bad name drew a 400
    # reported as "the traced server wrote no record".
    result = CliRunner().invoke(cli, ["trace", "bare_wsgi", "--header", header, "/headers"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("layercake: --header ") and "--raw FILE" in result.output


@pytest.mark.parametrize("path", ["/items/a b", "/items/1#frag", "/h\u00e9llo", "/x\ty"])
def test_cli_refuses_a_path_no_request_target_can_carry(path: str) -> None:
    # These reached the server as typed, drew a 400 before the app, and the trace said only
    # "the traced server wrote no record for the request".
    result = CliRunner().invoke(cli, ["trace", "bare_wsgi", "GET", path])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("layercake: the path ") and "percent-encode" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["scope-diff", "bare_asgi", "/inspect", "--servers", "uvicorn,uvicorn"],
        ["trace", "bare_asgi", "--warmup", "-1", "/json"],
    ],
)
def test_cli_refuses_a_repeated_server_and_a_negative_warmup(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output


# The whole promise: the three commands for every layer on a scratch server and a third-party
# server per interface (bridged where the interface differs).  ~40 server starts: -m full.
_MATRIX = [
    (layer, server)
    for layer in LAYERS
    for server in (
        ["scratch-wsgi", "waitress", "uvicorn"]
        if LAYERS[layer].interface == "wsgi"
        else ["scratch-asgi", "uvicorn", "gunicorn-sync"]
    )
]


@pytest.mark.full
@pytest.mark.parametrize(("layer", "server"), _MATRIX, ids=[f"{a}-{b}" for a, b in _MATRIX])
def test_trace_and_lifespan_matrix(layer: str, server: str) -> None:
    t = trace(layer, server, "GET", "/items/1")
    assert t.response["status"] == 200 and t.steps[-1] == "response bytes"
    record = lifespan(layer, server)
    assert record.started and "request GET /health" in record.kinds()


@pytest.mark.full
@pytest.mark.parametrize("layer", list(LAYERS))
def test_scope_diff_matrix(layer: str) -> None:
    servers = ["scratch-wsgi", "waitress"] if LAYERS[layer].interface == "wsgi" else ["scratch-asgi", "uvicorn"]
    diff = scope_diff(layer, servers, "GET", "/inspect")
    assert diff.rows and set(diff.interfaces) == set(servers)
