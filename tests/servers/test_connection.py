"""The sans-I/O server connection alone: plain bytes in (whole, one byte at a time, with trailing data), events and
response bytes out, a fake clock for the timers.  Every decision in servers/core/connection.py is checked here once,
for both servers; tests/servers/test_scratch_common.py checks the same behaviour over real sockets."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers.core.connection import OVERLOADED, TIMERS, TRANSITIONS, ServerConnection, State, state_table
from servers.core.events import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    BodyError,
    Data,
    EndOfMessage,
    Event,
    Rejected,
    RequestHead,
    WebSocketRequest,
)
from servers.core.limits import Limits
from servers.core.parsers import PARSERS
from servers.core.writer import CONTINUE

ROOT = Path(__file__).resolve().parents[2]
GET = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
WS = (
    b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=sorted(PARSERS))
def parser(request: pytest.FixtureRequest) -> str:
    return request.param


def make(parser: str = "h11", limits: Limits | None = None, **kw: object) -> tuple[ServerConnection, Clock]:
    clock = Clock()
    conn = ServerConnection(limits or Limits(), server_header=b"test", parser=parser, clock=clock, **kw)  # type: ignore[arg-type]
    return conn, clock


def pieces(data: bytes, how: str) -> list[bytes]:
    return [data] if how == "whole" else [data[i : i + 1] for i in range(len(data))]


def events(conn: ServerConnection, data: bytes = b"", how: str = "whole") -> list[Event]:
    """Feed ``data`` and collect what the connection says, as a server loop would (stopping at NEED_DATA/PAUSED)."""
    out: list[Event] = []
    for piece in pieces(data, how) if data else [b""][:0]:
        conn.receive_data(piece)
        out += pull(conn)
    if not data:
        out += pull(conn)
    return out


def pull(conn: ServerConnection) -> list[Event]:
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED and event is not CLOSED:
        out.append(event)
        if type(event) in (Rejected, WebSocketRequest):
            break
    if event is not NEED_DATA:
        out.append(event)
    return out


def respond(conn: ServerConnection, status: int = 200, body: bytes = b"ok") -> bytes:
    assert conn.writer is not None
    conn.writer.start(status, [(b"content-length", b"%d" % len(body))])
    return conn.writer.body(body, last=True)


def body_of(evs: Iterable[Event]) -> bytes:
    return b"".join(e.data for e in evs if type(e) is Data)


HOW = pytest.mark.parametrize("how", ["whole", "bytewise"])


# --- one request, one response -------------------------------------------------------------------------------------


@HOW
def test_get_then_keep_alive(parser: str, how: str) -> None:
    conn, _ = make(parser)
    evs = events(conn, GET, how)
    assert type(evs[0]) is RequestHead and evs[0].method == b"GET" and evs[0].target == b"/a"
    assert type(evs[1]) is EndOfMessage and conn.state is State.DONE
    out = respond(conn)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" not in out
    assert conn.state is State.IDLE and conn.next_event() is NEED_DATA


@pytest.mark.parametrize("after", ["head", "response"])
def test_a_broken_socket_closes_in_any_state(parser: str, after: str) -> None:
    # A server's send can fail after the connection counted the response complete (its bytes are made before they
    # are written): broken() must close from there as from the middle of a request, and again harmlessly.
    conn, _ = make(parser)
    events(conn, GET + GET[:5])  # a pipelined head has begun, too
    if after == "response":
        respond(conn)
        assert conn.state is State.HEAD
    conn.broken()
    assert conn.state is State.CLOSED and conn.next_event() is CLOSED
    conn.broken()
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    "request_bytes", [GET, post(b"hello world"), chunked(b"hello", b"world")], ids=["get", "post", "chunked"]
)
def test_a_request_cycle_leaves_no_cyclic_garbage(parser: str, request_bytes: bytes) -> None:
    """Everything a finished request cycle made is freed by reference counting alone.  A reference cycle per
    request (llhttp held our callbacks, we held llhttp) made the garbage collector run every ~70 requests -- 7% of
    a server's CPU under load, which uvicorn does not pay."""
    conn, _ = make(parser)
    for _ in range(3):  # warm up: caches, the Date header
        events(conn, request_bytes)
        respond(conn)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            events(conn, request_bytes)
            respond(conn)
        assert conn.state is State.IDLE
        assert gc.collect() == 0  # nothing was left that only the collector could free
    finally:
        gc.enable()


@HOW
def test_content_length_body(parser: str, how: str) -> None:
    conn, _ = make(parser)
    evs = events(conn, post(b"hello world"), how)
    assert body_of(evs) == b"hello world" and type(evs[-1]) is EndOfMessage


@HOW
def test_chunked_body_with_extension_and_trailer(parser: str, how: str) -> None:
    raw = chunked(b"abc", b"de").replace(b"3\r\n", b"3;x=y\r\n", 1).replace(b"0\r\n\r\n", b"0\r\nT: v\r\n\r\n")
    conn, _ = make(parser)
    evs = events(conn, raw, how)
    assert body_of(evs) == b"abcde" and type(evs[-1]) is EndOfMessage


@HOW
def test_malformed_chunk_is_a_400_body_error(parser: str, how: str) -> None:
    conn, _ = make(parser)
    evs = events(conn, chunked(b"abc").replace(b"3\r\n", b"zz\r\n"), how)
    assert evs[-1] == BodyError(400, evs[-1].reason)  # type: ignore[union-attr]
    out = conn.send_error(400, "bad chunk")
    assert b"connection: close" in out and conn.state is State.LINGER


@HOW
def test_chunked_body_over_the_limit_is_413(parser: str, how: str) -> None:
    conn, _ = make(parser, Limits(max_body_bytes=4))
    evs = events(conn, chunked(b"abc", b"de"), how)
    assert type(evs[-1]) is BodyError and evs[-1].status == 413
    assert conn.next_event() is NEED_DATA  # the rest is ignored, never delivered
    assert b"413" in conn.send_error(413, "too large") and conn.state is State.LINGER


# --- pipelining and trailing data ----------------------------------------------------------------------------------


@HOW
def test_pipelined_request_waits_for_the_response(parser: str, how: str) -> None:
    conn, _ = make(parser)
    evs = events(conn, GET + post(b"xy") + GET, how)
    assert [type(e) for e in evs] == [RequestHead, EndOfMessage, type(PAUSED)] or evs[-1] is PAUSED
    respond(conn)
    evs = pull(conn)
    assert type(evs[0]) is RequestHead and evs[0].method == b"POST" and body_of(evs) == b"xy"
    respond(conn)
    assert type(pull(conn)[0]) is RequestHead and conn.head.target == b"/a"  # type: ignore[union-attr]


def test_trailing_bytes_after_a_body_are_the_next_head(parser: str) -> None:
    conn, _ = make(parser)
    evs = events(conn, post(b"abc") + b"GET /next HT")
    assert body_of(evs) == b"abc" and evs[-1] is PAUSED
    respond(conn)
    assert conn.state is State.HEAD and events(conn, b"TP/1.1\r\nHost: h\r\n\r\n")[0].target == b"/next"  # type: ignore[union-attr]


# --- early responses and unread bodies -----------------------------------------------------------------------------


@HOW
def test_unread_small_body_is_drained_and_the_next_request_served(parser: str, how: str) -> None:
    conn, _ = make(parser)
    head = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    assert type(events(conn, head)[0]) is RequestHead
    out = respond(conn, 413, b"no")  # the app refuses without reading
    assert b"connection: close" not in out and conn.state is State.DRAIN
    evs = events(conn, b"0123456789" + GET, how)
    assert [type(e) for e in evs if e is not PAUSED][:2] == [RequestHead, EndOfMessage]


def test_unread_large_body_closes_with_connection_close(parser: str) -> None:
    conn, clock = make(parser, Limits(max_drain_bytes=100))
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"x" * 50)
    out = respond(conn, 413, b"no")
    assert b"connection: close" in out and conn.state is State.LINGER
    conn.receive_data(b"x" * 950 + GET)  # discarded, never parsed
    assert conn.next_event() is NEED_DATA
    clock.now = conn.deadline  # type: ignore[assignment]
    assert conn.handle_timeout() is CLOSED and conn.state is State.CLOSED


def test_unread_chunked_body_is_drained_or_closes_when_too_large(parser: str) -> None:
    conn, _ = make(parser, Limits(max_drain_bytes=100))
    events(conn, b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert b"connection: close" not in respond(conn) and conn.state is State.DRAIN  # its rest is unknown: drain
    evs = events(conn, b"2\r\nde\r\n0\r\n\r\n" + GET)
    assert type(evs[0]) is RequestHead  # drained: the next request is served
    conn, _ = make(parser, Limits(max_drain_bytes=100))
    events(conn, b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    respond(conn)
    conn.receive_data(b"c8\r\n" + b"x" * 200 + b"\r\n")
    assert conn.next_event() is NEED_DATA and conn.state is State.LINGER  # more than max_drain_bytes: close


def test_body_already_received_counts_as_read(parser: str) -> None:
    conn, _ = make(parser)
    assert type(events(conn, post(b"abc")[:-3])[0]) is RequestHead  # head only: the app has not asked for the body
    conn.receive_data(b"abc" + GET)
    respond(conn)  # the app never read it, but it all arrived: nothing to drain
    assert conn.state is State.HEAD and type(conn.next_event()) is RequestHead


# --- 100 Continue --------------------------------------------------------------------------------------------------


def test_100_continue_on_the_first_read_only(parser: str) -> None:
    conn, _ = make(parser)
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert conn.want_body() == CONTINUE and conn.want_body() == b""
    assert body_of(events(conn, b"hi")) == b"hi"


def test_no_100_continue_when_the_body_came_anyway(parser: str) -> None:
    conn, _ = make(parser)
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nh")
    assert conn.want_body() == b""


def test_an_echo_that_starts_its_answer_before_reading_keeps_the_connection(parser: str) -> None:
    # The head is built at http.response.start, but keep-alive is decided when it goes out with the first body
    # chunk: by then the app has asked for the body (100 Continue sent) and read part of it.
    conn, _ = make(parser)
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    conn.writer.start(200, [(b"transfer-encoding", b"chunked")])  # type: ignore[union-attr]  # made with the head
    assert conn.want_body() == CONTINUE
    evs = events(conn, b"h")
    out = conn.writer.body(body_of(evs))  # type: ignore[union-attr]  # made with the head
    assert b"connection: close" not in out
    conn.receive_data(b"i")
    pull(conn)
    conn.writer.body(b"i", last=True)  # type: ignore[union-attr]  # made with the head
    assert conn.state is State.IDLE


def test_refusing_without_reading_a_held_back_body_closes(parser: str) -> None:
    conn, _ = make(parser)
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    out = respond(conn, 401, b"no")  # RFC 9110 §10.1.1: the client may or may not send it now: close
    assert b"connection: close" in out and conn.state is State.LINGER


# --- refusals, limits and the empty-line bound ---------------------------------------------------------------------


@HOW
def test_bad_head_is_rejected_then_lingers(parser: str, how: str) -> None:
    conn, clock = make(parser)
    evs = events(conn, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", how)
    assert type(evs[0]) is Rejected and evs[0].status == 400 and b"connection: close" in evs[0].data
    assert conn.state is State.LINGER and conn.deadline == clock.now + Limits().linger_timeout
    conn.receive_data(b"anything")
    assert conn.next_event() is NEED_DATA


def test_leading_empty_lines_are_bounded(parser: str) -> None:
    conn, _ = make(parser)
    assert type(events(conn, b"\r\n" * 10 + GET)[0]) is RequestHead  # Apache's ten are ignored
    conn, _ = make(parser)
    conn.receive_data(b"\r\n" * 11)
    event = conn.next_event()
    assert type(event) is Rejected and (event.status, event.rule) == (400, "RFC 9112 §2.2")
    # 1 MiB of CRLF arriving in 64 KiB reads is refused on the first read, in one pass over it.
    conn, _ = make(parser)
    conn.receive_data(b"\r\n" * 32768)
    assert type(conn.next_event()) is Rejected and conn.state is State.LINGER
    # Fewer, trickled: the header timer started with the first one and is not restarted (the minimum rate only
    # ever brings the deadline closer than that).
    conn, clock = make(parser)
    conn.receive_data(b"\r\n")
    cap = clock.now + Limits().header_timeout
    for _ in range(9):
        clock.now += 1
        conn.receive_data(b"\r\n")
        assert conn.next_event() is NEED_DATA and conn.deadline is not None and conn.deadline <= cap


def test_header_timeout_runs_from_the_first_byte_and_is_not_restarted(parser: str) -> None:
    conn, clock = make(parser, Limits(min_rate=0))  # the timeout alone; the minimum rate is the next test
    conn.receive_data(b"\r\n")  # even an empty line starts the head
    first = conn.deadline
    assert conn.state is State.HEAD and first == clock.now + Limits().header_timeout
    clock.now += 5
    conn.receive_data(b"GET / HT")
    assert conn.deadline == first
    clock.now = first  # type: ignore[assignment]
    event = conn.handle_timeout()
    assert type(event) is Rejected and event.status == 408 and conn.state is State.LINGER


def test_a_trickled_head_is_cut_at_the_minimum_rate(parser: str) -> None:
    conn, clock = make(parser)
    limits = Limits()
    conn.receive_data(b"GET / HTTP/1.1\r\n")  # incomplete: the rate counts from its first byte
    for _ in range(int(limits.min_rate_grace) + 1):  # a byte a second, as slowloris does
        clock.now += 1
        conn.receive_data(b"X")
    assert conn.deadline is not None and conn.deadline < clock.now + limits.header_timeout
    clock.now = conn.deadline + 0.001
    event = conn.handle_timeout()
    assert type(event) is Rejected and event.status == 408 and event.rule == "min_rate" and "B/s" in event.reason


def test_a_head_that_came_whole_is_never_rate_limited(parser: str) -> None:
    conn, _ = make(parser)
    conn.receive_data(GET)
    assert type(conn.next_event()) is RequestHead and conn.deadline is None  # BODY, nobody waiting: no timer


def test_a_trickled_body_is_cut_at_the_minimum_rate_while_the_app_waits(parser: str) -> None:
    conn, clock = make(parser)
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
    clock.now += 60  # the app took its time before reading: not the client's fault
    conn.want_body()
    for _ in range(12):
        clock.now += 1
        conn.receive_data(b"x")
        pull(conn)
        conn.want_body()
    clock.now = conn.deadline + 0.001  # type: ignore[operator]
    event = conn.handle_timeout()
    assert type(event) is BodyError and event.status == 408 and "too slowly" in event.reason


def test_keepalive_timeout_when_idle(parser: str) -> None:
    conn, clock = make(parser)
    assert conn.deadline == clock.now + Limits().keepalive_timeout
    clock.now += Limits().keepalive_timeout
    assert conn.handle_timeout() is CLOSED


def test_body_timeout_only_while_the_app_waits(parser: str) -> None:
    conn, clock = make(parser, Limits(min_rate=0))  # the timeout alone; the minimum rate has its own test
    events(conn, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
    assert conn.deadline is None  # the app is busy, not waiting: no timer
    conn.want_body()
    assert conn.deadline == clock.now + Limits().body_timeout
    clock.now += 10
    conn.receive_data(b"ab")  # progress restarts it
    assert conn.deadline == clock.now + Limits().body_timeout
    pull(conn)
    conn.want_body()
    clock.now += Limits().body_timeout
    assert conn.handle_timeout() == BodyError(408, "request body not received in time (Limits.body_timeout)")


def test_overloaded_is_a_503(parser: str) -> None:
    conn, _ = make(parser)
    events(conn, GET)
    rejected = conn.refuse(OVERLOADED)
    assert rejected.status == 503 and rejected.data.startswith(b"HTTP/1.1 503 ") and conn.state is State.LINGER


# --- EOF, shutdown ---------------------------------------------------------------------------------------------------


def test_eof_when_idle_closes(parser: str) -> None:
    conn, _ = make(parser)
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED


def test_half_closed_client_gets_its_answer_then_close(parser: str) -> None:
    conn, _ = make(parser)
    conn.receive_data(GET)
    conn.receive_data(b"")
    assert type(conn.next_event()) is RequestHead and type(conn.next_event()) is EndOfMessage
    assert b"connection: close" in respond(conn) and conn.state is State.CLOSED


def test_eof_in_the_middle_of_a_body(parser: str) -> None:
    conn, _ = make(parser)
    events(conn, post(b"hello")[:-2])
    conn.receive_data(b"")
    assert type(pull(conn)[-1]) is BodyError


def test_shutdown_says_close_on_the_response_in_progress(parser: str) -> None:
    conn, _ = make(parser)
    assert conn.shutdown() is True  # idle: close now
    conn, _ = make(parser)
    events(conn, GET)
    assert conn.shutdown() is False and b"connection: close" in respond(conn) and conn.state is State.CLOSED


# --- WebSocket handshakes (scratch-asgi) ----------------------------------------------------------------------------


def test_websocket_handshake_and_early_frames(parser: str) -> None:
    conn, _ = make(parser, websockets=True)
    conn.receive_data(WS + b"\x81\x85frame")
    event = conn.next_event()
    assert type(event) is WebSocketRequest
    response, frames = conn.accept_websocket({"type": "websocket.accept"})
    assert response.startswith(b"HTTP/1.1 101 ") and frames == b"\x81\x85frame" and conn.state is State.UPGRADED


def test_bad_websocket_version_is_426_with_the_version_header(parser: str) -> None:
    conn, _ = make(parser, websockets=True)
    conn.receive_data(WS.replace(b"Version: 13", b"Version: 8"))
    event = conn.next_event()
    assert type(event) is Rejected and event.status == 426
    assert b"\r\nsec-websocket-version: 13\r\n" in event.data  # RFC 6455 §4.4


def test_websocket_requests_are_plain_requests_without_websockets(parser: str) -> None:
    conn, _ = make(parser)
    assert type(events(conn, WS)[0]) is RequestHead


# --- the table ---------------------------------------------------------------------------------------------------------


def test_state_table_covers_every_state_and_is_in_the_readme() -> None:
    assert {a for a, _ in TRANSITIONS} | set(TRANSITIONS.values()) == set(State)
    assert set(TIMERS) <= set(State)
    assert state_table() in (ROOT / "servers" / "README.md").read_text()


# --- property: every request is answered or the connection ends; nothing is left paused ------------------------------


request_kinds = st.sampled_from(["get", "post", "post-continue", "chunked"])
behaviours = st.sampled_from(["read", "ignore", "early"])  # read the body, never read it, answer before reading


def raw_request(kind: str, size: int) -> bytes:
    body = b"x" * size
    if kind == "get":
        return GET
    if kind == "post":
        return post(body)
    if kind == "post-continue":
        return post(body, b"Expect: 100-continue\r\n")
    return chunked(body) if body else chunked()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(request_kinds, st.integers(0, 300), behaviours), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 2000), max_size=8),
    timeout_at=st.one_of(st.none(), st.integers(0, 30)),
    parser=st.sampled_from(sorted(PARSERS)),
)
def test_every_request_is_answered_or_the_connection_ends(
    plan: list[tuple[str, int, str]], cuts: list[int], timeout_at: int | None, parser: str
) -> None:
    """A server loop over the connection, fed the plan's requests pipelined and cut at random points, with the app
    behaving as planned and, optionally, a timeout firing part-way.  Once every byte has been fed and every app has
    answered, the connection must be IDLE with every request answered, or have ended (LINGER/CLOSED) -- never
    waiting in BODY/DONE/DRAIN, which is what a hang is."""
    conn, clock = make(parser, Limits(max_drain_bytes=150))
    data = b"".join(raw_request(kind, size) for kind, size, _ in plan)
    points = sorted({c for c in cuts if c < len(data)}) + [len(data)]
    chunks = [data[a:b] for a, b in zip([0, *points], points, strict=False)]
    answered = 0
    heads = 0
    step = 0
    current: RequestHead | None = None
    behaviour = ""

    def answer() -> None:
        nonlocal answered, current
        respond(conn)
        answered += 1
        current = None

    for chunk in chunks:
        if conn.state in (State.LINGER, State.CLOSED):
            break
        conn.receive_data(chunk)
        while True:
            step += 1
            if timeout_at is not None and step == timeout_at and conn.deadline is not None:
                clock.now = conn.deadline
                event = conn.handle_timeout()
            else:
                event = conn.next_event()
            if type(event) is RequestHead:
                current, behaviour = event, plan[heads][2]
                heads += 1
                if behaviour != "read":
                    answer()  # "early"/"ignore": respond before (or instead of) reading the body
                else:
                    conn.want_body()
            elif type(event) is EndOfMessage:
                if current is not None:
                    answer()
            elif type(event) in (BodyError,):
                if current is not None and not conn.writer.started:  # type: ignore[union-attr]
                    conn.send_error(event.status, event.reason)  # type: ignore[union-attr]
                    answered += 1
                    current = None
            elif type(event) is Rejected or event is CLOSED:
                break
            elif event is NEED_DATA or event is PAUSED:
                break
        # a PAUSED connection must have a complete request whose answer is pending, never a finished one
        assert not (conn.state is State.DONE and current is None)
    assert answered <= len(plan)
    if current is None:  # every app has answered and every byte was fed
        assert conn.state in (State.IDLE, State.LINGER, State.CLOSED), conn.state
        if conn.state is State.IDLE:
            assert answered == len(plan)
