"""The sans-I/O core with plain bytes: every reader fed whole, one byte at a time and with trailing data
(h11's testing style), the environ and scope tables, and the send-side state machines."""

from __future__ import annotations

import ast
import io
import sys
import types
from pathlib import Path

import pytest

from servers.core.asgi import ASGIProtocolError, HTTPSend, http_scope, websocket_scope
from servers.core.events import NEED_DATA, Data, EndOfMessage, RequestHead
from servers.core.head import HeadReader, Rejection
from servers.core.http import ClientDisconnected, DateHeader, split_target
from servers.core.limits import Limits
from servers.core.parsers import H11Parser
from servers.core.websocket import WebSocketSession, accept_response, handshake_problem, is_websocket_upgrade
from servers.core.writer import ResponseError, ResponseWriter, error_response
from servers.core.wsgi import StartResponse, WSGIInput, build_environ, iterate_body

CORE = Path(__file__).resolve().parents[2] / "servers" / "core"
HEAD = b"GET /a%20b?x=1&y=%41 HTTP/1.1\r\nHost: example.com\r\nX-Thing: one\r\nX-Thing: two\r\n\r\n"


def feed(data: bytes, how: str, limits: Limits | None = None) -> list:
    """Feed ``data`` to a HeadReader whole or byte by byte; return every non-None result."""
    reader = HeadReader(limits or Limits())
    pieces = [data] if how == "whole" else [data[i : i + 1] for i in range(len(data))]
    results = []
    for piece in pieces:
        result = reader.feed(piece)
        if result is not None:
            results.append(result)
            if isinstance(result, tuple):
                # like a server: what followed the head is the caller's; feeding restarts with it
                reader = HeadReader(limits or Limits())
    return results


# --- imports ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_io(path: Path) -> None:
    """The core is sans-I/O: it must not import socket, selectors, threading or asyncio (directly)."""
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"socket", "selectors", "threading", "asyncio", "ssl"}


def test_core_package_loads_without_io_modules() -> None:
    """Importing the whole core in a fresh interpreter pulls in none of the I/O modules (even indirectly)."""
    import subprocess

    code = (
        "import sys; import servers.core.head, servers.core.http, servers.core.wsgi, servers.core.asgi, "
        "servers.core.websocket; print(sorted({'selectors', 'asyncio', 'threading'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the head reader --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_head_reader_complete_head(how: str) -> None:
    assert feed(HEAD, how) == [(HEAD, b"")]


def test_head_reader_keeps_trailing_data() -> None:
    reader = HeadReader(Limits())
    assert reader.feed(HEAD + b"body bytes GET /next") == (HEAD, b"body bytes GET /next")
    assert not reader.started


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_head_reader_pipelined_heads(how: str) -> None:
    results = feed(HEAD + HEAD, how)
    # whole: the first head, with the second as trailing data; bytewise: both heads, one at a time
    assert results[0][0] == HEAD
    assert (results[0][1] == HEAD) if how == "whole" else (results == [(HEAD, b""), (HEAD, b"")])


def test_head_reader_ignores_leading_empty_lines() -> None:
    assert HeadReader(Limits()).feed(b"\r\n\r\n" + HEAD) == (HEAD, b"")


def test_head_reader_incomplete_is_none_and_started() -> None:
    reader = HeadReader(Limits())
    assert reader.feed(HEAD[:-2]) is None
    assert reader.started


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_head_reader_long_request_line_is_414(how: str) -> None:
    limits = Limits(max_request_line=64)
    results = feed(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", how, limits)
    assert isinstance(results[0], Rejection) and results[0].status == 414


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_head_reader_huge_head_is_431(how: str) -> None:
    limits = Limits(max_head_bytes=1024)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
    results = feed(head, how, limits)  # never finished: the limit must fire on the partial head
    assert isinstance(results[0], Rejection) and results[0].status == 431


def test_head_reader_bad_head_is_rejected_by_strict_checks() -> None:
    result = HeadReader(Limits()).feed(
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert isinstance(result, Rejection) and result.status == 400


# --- request targets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a/b?c=d", (b"/a/b", b"c=d")),
        (b"/a", (b"/a", b"")),
        (b"http://example.com/x?y", (b"/x", b"y")),
        (b"http://example.com", (b"/", b"")),
        (b"*", (b"*", b"")),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


# --- WSGI environ -----------------------------------------------------------------------------------------------


def request(head: bytes = HEAD, body: bytes = b"") -> tuple[H11Parser, RequestHead]:
    parser = H11Parser(Limits())
    parser.receive_data(head + body)
    event = parser.next_event()
    assert isinstance(event, RequestHead)
    return parser, event


def test_environ_pep3333_rules() -> None:
    head = (
        b"POST /caf%C3%A9/%2Fx?q=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 3\r\nX-Forwarded-For: a\r\nX_Forwarded_For: evil\r\nCookie: a=1\r\nCookie: b=2\r\n"
        b"Accept: x\r\nAccept: y\r\n\r\n"
    )
    _, req = request(head, b"abc")
    env = build_environ(req, server=("127.0.0.1", 8000), client=("10.0.0.1", 5555), wsgi_input=io.BytesIO())
    # percent-decoded, then each byte one latin-1 code point (PEP 3333 "Unicode Issues")
    assert env["PATH_INFO"] == "/café//x".encode().decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café//x"
    assert env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "q=%20"  # QUERY_STRING stays encoded
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_FORWARDED_FOR"] == "a"  # the underscore spelling cannot overwrite it
    assert env["HTTP_ACCEPT"] == "x, y"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == "8000"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.0.0.1" and env["REMOTE_PORT"] == "5555"
    assert env["wsgi.url_scheme"] == "http" and env["wsgi.version"] == (1, 0)
    assert env["wsgi.input_terminated"] is True
    assert env["RAW_URI"] == "/caf%C3%A9/%2Fx?q=%20"
    for key, value in env.items():  # PEP 3333: CGI keys are native strings
        if key.isupper():
            assert type(value) is str, key


def test_environ_without_body_headers_has_no_content_keys() -> None:
    _, req = request()
    env = build_environ(req, server=("h", 1), client=None, wsgi_input=io.BytesIO())
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env and "REMOTE_ADDR" not in env


def test_environ_script_name() -> None:
    _, req = request(b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n")
    env = build_environ(req, server=("h", 1), client=None, wsgi_input=None, script_name="/app")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")


# --- wsgi.input -------------------------------------------------------------------------------------------------


def make_input(pieces: list[bytes]) -> WSGIInput:
    it = iter(pieces)
    return WSGIInput(lambda: next(it, b""))


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_wsgi_input_reads(split: str) -> None:
    data = b"line one\nline two\nlast"
    pieces = [data] if split == "whole" else [data[i : i + 1] for i in range(len(data))]
    assert make_input(pieces).read() == data
    stream = make_input(list(pieces))
    assert stream.readline() == b"line one\n"
    assert stream.read(4) == b"line"
    assert stream.readline(3) == b" tw"
    assert list(stream) == [b"o\n", b"last"]
    assert stream.read() == b"" and stream.readline() == b""


def test_wsgi_input_readlines_and_read1() -> None:
    assert make_input([b"a\nb\n", b"c"]).readlines() == [b"a\n", b"b\n", b"c"]
    stream = make_input([b"abc", b"def"])
    assert stream.read1() == b"abc" and stream.read1() == b"def" and stream.read1() == b""


def test_wsgi_input_over_h11_chunked_stops_at_message_end() -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn, _ = request(head, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /next HTTP/1.1\r\n")

    def pull() -> bytes:
        event = conn.next_event()
        return event.data if isinstance(event, Data) else b""

    assert WSGIInput(pull).read() == b"abcde"
    assert conn.trailing_data == b"GET /next HTTP/1.1\r\n"  # the next request is left for the HeadReader


# --- start_response -----------------------------------------------------------------------------------------------


def writer_for(head: bytes = HEAD, closing: bool = False) -> ResponseWriter:
    _, req = request(head)
    return ResponseWriter(
        req.method, req.http_version, req.headers, date=DateHeader(), server_header=b"t", closing=closing
    )


def responder(head: bytes = HEAD) -> tuple[StartResponse, list[bytes]]:
    out: list[bytes] = []
    return StartResponse(writer_for(head), out.append), out


def test_start_response_headers_wait_for_first_nonempty_chunk() -> None:
    start, out = responder()
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"")
    assert out == []  # PEP 3333: not before the first non-empty body string
    iterate_body(iter([b"", b"hello"]), start)
    raw = b"".join(out)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in raw.lower()
    assert b"server: t" in raw and b"date: " in raw and raw.endswith(b"5\r\nhello\r\n0\r\n\r\n")


def test_start_response_single_chunk_is_one_write() -> None:
    start, out = responder()
    start("200 OK", [("Content-Length", "2")])
    iterate_body([b"hi"], start)
    assert len(out) == 1 and out[0].endswith(b"\r\n\r\nhi")


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    start, _ = responder()
    start("200 OK", [])
    with pytest.raises(RuntimeError, match="second time"):
        start("500 Oops", [])


def test_start_response_exc_info_replaces_unsent_status() -> None:
    start, out = responder()
    start("200 OK", [])
    try:
        raise ValueError("boom")
    except ValueError:
        start("500 Internal Server Error", [("Content-Length", "0")], sys.exc_info())
    start.finish()
    assert b"".join(out).startswith(b"HTTP/1.1 500 ")


def test_start_response_exc_info_after_headers_sent_reraises() -> None:
    start, _ = responder()
    start("200 OK", [])
    start.write(b"partial")
    try:
        raise ValueError("boom")
    except ValueError:
        with pytest.raises(ValueError, match="boom"):
            start("500 Internal Server Error", [], sys.exc_info())


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        ("200", [], ValueError),
        (b"200 OK", [], TypeError),
        ("200 OK", [("X-A", "b\r\nSet-Cookie: evil")], ValueError),
        ("200 OK", [("X-A", "b\0")], ValueError),
        ("200 OK", [("X-A", 1)], TypeError),
        ("200 OK", (("X-A", "b"),), TypeError),
    ],
)
def test_start_response_refuses_bad_status_and_headers(status, headers, error) -> None:  # type: ignore[no-untyped-def]
    start, _ = responder()
    with pytest.raises(error):
        start(status, headers)


def test_write_before_start_response_is_an_error() -> None:
    start, _ = responder()
    with pytest.raises(RuntimeError, match="before start_response"):
        start.write(b"x")


def test_head_request_sends_no_body() -> None:
    start, out = responder(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    start("200 OK", [("Content-Length", "5")])
    iterate_body([b"hello"], start)
    assert b"".join(out).endswith(b"\r\n\r\n")


# --- ASGI scopes and send -------------------------------------------------------------------------------------------


def test_http_scope() -> None:
    _, req = request(b"GET /caf%C3%A9%2F?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    state = {"store": object()}
    scope = http_scope(req, server=("127.0.0.1", 80), client=("1.2.3.4", 9), state=state)
    assert scope["type"] == "http" and scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["path"] == "/café/" and scope["raw_path"] == b"/caf%C3%A9%2F"
    assert scope["query_string"] == b"q=1" and scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"h"), (b"x-a", b"1"), (b"x-a", b"2")]
    assert scope["method"] == "GET" and scope["http_version"] == "1.1" and scope["scheme"] == "http"
    assert scope["client"] == ("1.2.3.4", 9) and scope["server"] == ("127.0.0.1", 80)
    assert scope["state"] == state and scope["state"] is not state  # a shallow copy per request


WS_HEAD = (
    b"GET /ws?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
)


def test_websocket_scope_and_handshake() -> None:
    conn, req = request(WS_HEAD)
    assert is_websocket_upgrade(req) and handshake_problem(req) is None
    scope = websocket_scope(req, server=("h", 1), client=None, state=None)
    assert scope["type"] == "websocket" and scope["scheme"] == "ws" and "method" not in scope
    assert scope["subprotocols"] == ["chat", "superchat"] and "state" not in scope
    raw = accept_response(req, {"type": "websocket.accept", "subprotocol": "chat"})
    # RFC 6455 §1.3's own example key and accept value
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in raw
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.next_event() is NEED_DATA  # h11 parses nothing after an upgrade request (PAUSED inside)
    with pytest.raises(ASGIProtocolError, match="CR, LF or NUL"):
        accept_response(req, {"type": "websocket.accept", "headers": [(b"x", b"a\r\nb")]})


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ((b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"), 426),
        ((b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Key: short"), 400),
        ((b"GET /ws", b"POST /ws"), 400),
    ],
)
def test_websocket_handshake_problems(change: tuple[bytes, bytes], status: int) -> None:
    _, req = request(WS_HEAD.replace(*change))
    assert handshake_problem(req)[0] == status


def sender(head: bytes = HEAD) -> HTTPSend:
    return HTTPSend(writer_for(head))


def test_http_send_state_machine_happy_path() -> None:
    s = sender()
    assert s.message({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}) == b""
    out = s.message({"type": "http.response.body", "body": b"hi"})
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nhi") and s.done


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"type": "http.response.body", "body": b""}], "Expected ASGI message 'http.response.start'"),
        (
            [{"type": "http.response.start", "status": 200}, {"type": "http.response.start", "status": 200}],
            "Expected ASGI message 'http.response.body'",
        ),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body"},
                {"type": "http.response.body"},
            ],
            "after response already completed",
        ),
        ([{"type": "http.response.start", "status": "200"}], "must be an int"),
        ([{"type": "http.response.start", "status": 200, "headers": [("a", "b")]}], "must be bytes"),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"a", b"b\r\nc: d")]}], "CR, LF or NUL"),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"a b", b"c")]}], "not a token"),
        # A name holding ": " would read, once written, as a shorter name and a value: a framing field the
        # writer never saw (``Transfer-Encoding: gzip: x`` beside our Content-Length).
        (
            [{"type": "http.response.start", "status": 200, "headers": [(b"Transfer-Encoding: gzip", b"x")]}],
            "not a token",
        ),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"", b"x")]}], "not a token"),
        # NUL joins the names for their one token match, so a NUL inside a name is found by the byte count.
        (
            [{"type": "http.response.start", "status": 200, "headers": [(b"a\x00b", b"x")]}],
            "header name .* is not a token",
        ),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"a", b"b\x00")]}], "CR, LF or NUL"),
        (
            [{"type": "http.response.start", "status": 200}, {"type": "http.response.body", "body": "text"}],
            "must be bytes",
        ),
        (["not a dict"], "dicts with a 'type'"),
        ([types.MappingProxyType({"type": "http.response.start", "status": 200})], "dicts with a 'type'"),
        ([{"type": 1}], "dicts with a 'type'"),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"ab",)]}], "byte pairs"),
        ([{"type": "http.response.start", "status": 200, "headers": [b"ab"]}], "must be bytes"),  # 97, 98
        ([{"type": "http.response.start", "status": 200, "headers": [(b"a", bytearray(b"b"))]}], "must be bytes"),
    ],
)
def test_http_send_state_machine_errors(messages: list, match: str) -> None:
    s = sender()
    with pytest.raises(ASGIProtocolError, match=match):
        for message in messages:
            s.message(message)


class Text(str):
    pass


class Blob(bytes):
    pass


def test_http_send_takes_subclasses_and_bytes_likes_where_the_spec_says_bytes() -> None:
    """A ``str`` subclass is a str and a ``bytes`` subclass, bytearray or memoryview body is bytes: sent as given."""
    for body in (Blob(b"hi"), bytearray(b"hi"), memoryview(b"hi")):
        s = sender()
        s.message({"type": Text("http.response.start"), "status": 200, "headers": [(b"content-length", b"2")]})
        data = s.message({"type": "http.response.body", "body": body})
        assert data.endswith(b"\r\n\r\nhi") and s.done


# --- WebSocket session ----------------------------------------------------------------------------------------------


def client_frames(*events) -> bytes:  # type: ignore[no-untyped-def]
    from wsproto.connection import Connection, ConnectionType

    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)


def test_websocket_session_fragmented_message_and_ping() -> None:
    from wsproto.events import Ping, TextMessage

    data = client_frames(TextMessage("hel", message_finished=False), Ping(b"p"), TextMessage("lo"))
    for how in ("whole", "bytewise"):
        session = WebSocketSession(1024)
        messages, output = [], b""
        for piece in [data] if how == "whole" else [data[i : i + 1] for i in range(len(data))]:
            outcome = session.receive_data(piece)
            messages += outcome.messages
            output += outcome.output
        assert messages == [{"type": "websocket.receive", "text": "hello"}]
        assert output == b"\x8a\x01p"  # an unmasked Pong with the same payload (RFC 6455 §5.5.2)


def test_websocket_session_message_too_big_is_1009() -> None:
    from wsproto.events import BytesMessage

    session = WebSocketSession(10)
    outcome = session.receive_data(client_frames(BytesMessage(b"x" * 11)))
    assert outcome.close and outcome.messages[-1]["code"] == 1009
    assert outcome.output[:1] == b"\x88" and outcome.output[2:4] == (1009).to_bytes(2, "big")  # a close frame


def test_websocket_session_protocol_error_is_a_1002_close_frame() -> None:
    session = WebSocketSession(1024)
    outcome = session.receive_data(b"\x81\x05hello")  # unmasked client frame: RFC 6455 §5.1 forbids it
    assert outcome.close and outcome.output[2:4] == (1002).to_bytes(2, "big")


def test_websocket_session_invalid_utf8_is_1007() -> None:
    from wsproto.events import BytesMessage

    frame = bytearray(client_frames(BytesMessage(b"\xff\xfe")))
    frame[0] = 0x81  # make it a text frame with invalid UTF-8
    outcome = WebSocketSession(1024).receive_data(bytes(frame))
    assert outcome.close and outcome.output[2:4] == (1007).to_bytes(2, "big")


def test_websocket_session_client_close_is_echoed_and_send_then_raises() -> None:
    from wsproto.events import CloseConnection

    session = WebSocketSession(1024)
    outcome = session.receive_data(client_frames(CloseConnection(code=1000, reason="bye")))
    assert outcome.messages == [{"type": "websocket.disconnect", "code": 1000, "reason": "bye"}]
    assert outcome.close and outcome.output[2:4] == (1000).to_bytes(2, "big")
    with pytest.raises(ClientDisconnected):
        session.send({"type": "websocket.send", "text": "late"})


def test_websocket_session_send_rules() -> None:
    session = WebSocketSession(1024)
    assert session.send({"type": "websocket.send", "text": "hi"}) == b"\x81\x02hi"
    with pytest.raises(ASGIProtocolError, match="exactly one"):
        session.send({"type": "websocket.send", "text": "a", "bytes": b"b"})
    session.send({"type": "websocket.close", "code": 1000})
    with pytest.raises(ASGIProtocolError, match="after the app sent websocket.close"):
        session.send({"type": "websocket.send", "text": "late"})


def test_imf_fixdate_matches_rfc_example() -> None:
    from email.utils import formatdate

    from servers.core.http import imf_fixdate

    assert imf_fixdate(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 §5.6.7's example
    assert imf_fixdate(1_800_000_000) == formatdate(1_800_000_000, usegmt=True).encode()


# --- the response writer ----------------------------------------------------------------------------------------


def test_writer_content_length_framing_and_one_write() -> None:
    w = writer_for()
    w.start(200, [(b"content-length", b"5")])
    raw = w.body(b"hello", last=True)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nhello")
    assert b"date: " in raw and b"server: t\r\n" in raw and w.finished and w.keep_alive


def test_writer_chunked_when_no_length_on_http11() -> None:
    w = writer_for()
    w.start(200, [])
    raw = w.body(b"ab") + w.body(b"") + w.body(b"cde", last=True)
    assert b"transfer-encoding: chunked\r\n" in raw and raw.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")


def test_writer_http10_is_close_delimited() -> None:
    w = writer_for(b"GET / HTTP/1.0\r\n\r\n")
    w.start(200, [])
    raw = w.body(b"x", last=True)
    assert b"connection: close" in raw and raw.endswith(b"\r\n\r\nx") and not w.keep_alive


@pytest.mark.parametrize(("head", "status"), [(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 200), (HEAD, 204), (HEAD, 304)])
def test_writer_no_body(head: bytes, status: int) -> None:
    w = writer_for(head)
    w.start(status, [(b"content-length", b"5")])
    raw = w.body(b"hello", last=True)
    assert raw.endswith(b"\r\n\r\n")
    assert (b"content-length" in raw) == (status != 204)  # RFC 9110 §8.6: never in a 204


def test_writer_connection_close_from_request_app_or_shutdown() -> None:
    w = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    w.start(200, [(b"content-length", b"0")])
    assert b"connection: close" in w.body(b"", last=True) and not w.keep_alive
    w = writer_for()
    w.start(200, [(b"Connection", b"close"), (b"content-length", b"0")])
    assert w.body(b"", last=True).count(b"onnection: close") == 1 and not w.keep_alive
    w = writer_for(closing=True)
    w.start(200, [(b"content-length", b"0")])
    assert b"connection: close" in w.body(b"", last=True)


def test_writer_content_length_mismatch_is_an_error() -> None:
    w = writer_for()
    w.start(200, [(b"content-length", b"3")])
    with pytest.raises(ResponseError, match="longer"):
        w.body(b"toolong")
    w = writer_for()
    w.start(200, [(b"content-length", b"3")])
    w.body(b"a")
    with pytest.raises(ResponseError, match="short"):
        w.end()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"a\r\nset-cookie: evil")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\rb")],
        [(b"x", b"a\0b")],
        [(b"x:y", b"a")],
        [(b"", b"a")],
    ],
)
def test_writer_refuses_response_splitting(headers: list) -> None:
    with pytest.raises(ResponseError):
        writer_for().start(200, headers)


def test_error_response_is_generic_and_complete() -> None:
    raw = error_response(writer_for(), 500, "Internal Server Error")
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and raw.endswith(
        b"\r\n\r\nInternal Server Error\n"
    )


def test_writer_closes_after_an_ignored_upgrade() -> None:
    w = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
    w.start(200, [(b"content-length", b"0")])
    assert b"connection: close" in w.body(b"", last=True) and not w.keep_alive


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_head_reader_empty_lines_before_the_request_line(how: str) -> None:
    assert feed(b"\r\n\r\n" + HEAD, how) == [(HEAD, b"")]


def test_head_reader_trickled_head_costs_linear_work() -> None:
    """A byte-per-packet client must not make the server rescan its buffer on every byte: the strict checks run
    only on line ends and every CHECK_EVERY bytes (a count, not a timing)."""
    import servers.core.head as head_module

    calls = []
    real = head_module.check_partial_head
    head_module.check_partial_head = lambda buf, limits: calls.append(len(buf)) or real(buf, limits)
    try:
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"v" * 8000 + b"\r\n\r\n"
        assert feed(head, "bytewise") == [(head, b"")]
    finally:
        head_module.check_partial_head = real
    assert len(calls) < 30, len(calls)
