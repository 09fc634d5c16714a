"""The request parsers with plain bytes, every backend alike: no sockets, no servers.

Each test runs against every parser in ``PARSERS`` (h11, httptools, h11-mypyc; a backend whose package is missing is
skipped by name), fed whole, one byte at a time and with trailing data, as h11's own tests feed its readers.  The
answers are compared with h11's, the reference: the same events (bodies compared joined, since how a body is cut
into ``Data`` events depends on the reads), or a ``ParseError`` with the same status.  The last tests run the whole
raw corpus through the strict gate and then every parser, as the connection does, and require the same answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pytest

from layercake.corpus import load_corpus
from servers.core import parsers
from servers.core.events import NEED_DATA, Data, EndOfMessage, RequestHead
from servers.core.limits import Limits
from servers.core.parsers import PARSERS, MissingParserPackage, ParseError, parser_class
from servers.core.strict import check_head

LIMITS = Limits()


def _available(name: str) -> bool:
    try:
        parser_class(name)
    except MissingParserPackage:
        return False
    return True


BACKENDS = [pytest.param(n, marks=pytest.mark.skipif(not _available(n), reason=f"{n} not installed")) for n in PARSERS]
FEEDS = {"whole": None, "bytewise": 1, "pieces7": 7}


@dataclass
class Outcome:
    """What one request cycle gave: the head, the body joined, whether it ended, the bytes handed back -- or an
    error status."""

    head: RequestHead | None = None
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""
    ended: bool = False
    trailing: bytes = b""
    error: int | None = None


def parse(name: str, data: bytes, step: int | None = None, parser: parsers.RequestParser | None = None) -> Outcome:
    """Feed ``data`` to ``parser`` (None: a new parser called ``name``) in pieces of ``step`` bytes (None: whole)
    until the message ends; then collect the bytes it did not parse (plus those never fed)."""
    parser = parser or PARSERS[name](LIMITS)
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    out = Outcome()
    for index, piece in enumerate(pieces):
        parser.receive_data(piece)
        try:
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, RequestHead):
                    assert out.head is None, "a second head from one parser"
                    out.head, out.headers = event, event.headers
                elif isinstance(event, Data):
                    assert out.head is not None and not out.ended
                    out.body += event.data
                else:
                    assert isinstance(event, EndOfMessage)
                    out.ended = True
                    break
        except ParseError as exc:
            out.error = exc.status
            return out
        if out.ended:
            # Past the end, the parser holds everything and parses nothing: more bytes only extend trailing_data.
            # (The connection asks for no event after EndOfMessage: h11 would refuse data after an HTTP/1.0 one.)
            parser.receive_data(b"".join(pieces[index + 1 :]))
            out.trailing = parser.trailing_data
            return out
    return out


def head(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


NEXT = head(b"GET /next HTTP/1.1", b"Host: a")  # a pipelined request no parser may read
CHUNKED = head(b"POST /echo HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked")
UPGRADE = (b"Upgrade: h2c", b"Connection: Upgrade, HTTP2-Settings")

# name -> (bytes, expected body or error status).  Every one also ends with NEXT, which must come back untouched.
MESSAGES: dict[str, tuple[bytes, bytes | int]] = {
    "get": (head(b"GET /plaintext HTTP/1.1", b"Host: a", b"Accept: */*"), b""),
    "http10": (head(b"GET / HTTP/1.0"), b""),
    "content-length": (head(b"POST /echo HTTP/1.1", b"Host: a", b"Content-Length: 5") + b"hello", b"hello"),
    "content-length-zero": (head(b"POST /echo HTTP/1.1", b"Host: a", b"Content-Length: 0"), b""),
    "content-length-leading-zeros": (head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 003") + b"abc", b"abc"),
    "body-with-crlfcrlf": (
        head(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 8") + b"\r\n\r\n\r\n\r\n",
        b"\r\n" * 4,
    ),
    "chunked": (CHUNKED + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    "chunked-extensions": (CHUNKED + b'5;name=value;q="a b"\r\nhello\r\n0;last\r\n\r\n', b"hello"),
    "chunked-trailers": (CHUNKED + b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", b"hello"),
    "chunked-uppercase-hex": (CHUNKED + b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    "chunked-space-after-size": (CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n", b"hello"),
    "chunked-data-is-crlfcrlf": (CHUNKED + b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n"),
    "chunked-big": (CHUNKED + b"4000\r\n" + b"x" * 0x4000 + b"\r\n0\r\n\r\n", b"x" * 0x4000),
    "unknown-method": (head(b"PURGEALL /cache HTTP/1.1", b"Host: a"), b""),
    "lowercase-method": (head(b"get / HTTP/1.1", b"Host: a"), b""),
    "upgrade-with-body": (head(b"POST / HTTP/1.1", b"Host: a", *UPGRADE, b"Content-Length: 3") + b"abc", b"abc"),
    "upgrade-chunked": (
        head(b"POST / HTTP/1.1", b"Host: a", *UPGRADE, b"Transfer-Encoding: chunked") + b"1\r\nz\r\n0\r\n\r\n",
        b"z",
    ),
    "chunk-size-not-hex": (CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-negative": (CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-data-too-long": (CHUNKED + b"3\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-0x": (CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-leading-space": (CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    "trailer-without-colon": (CHUNKED + b"0\r\nnot a field\r\n\r\n", 400),
}


@pytest.mark.parametrize("feed", FEEDS.values(), ids=FEEDS.keys())
@pytest.mark.parametrize("message", MESSAGES, ids=str)
@pytest.mark.parametrize("name", BACKENDS)
def test_events_match_h11_and_the_next_request_is_never_parsed(name: str, message: str, feed: int | None) -> None:
    data, expected = MESSAGES[message]
    got = parse(name, data + NEXT, feed)
    if isinstance(expected, int):
        assert got.error == expected
    else:
        assert (got.error, got.ended, got.body, got.trailing) == (None, True, expected, NEXT)
    reference = parse("h11", data + NEXT, feed)
    assert (got.head, got.headers, got.body, got.ended, got.trailing, got.error) == (
        reference.head,
        reference.headers,
        reference.body,
        reference.ended,
        reference.trailing,
        reference.error,
    )


@pytest.mark.parametrize("name", BACKENDS)
def test_head_fields_are_normalised_as_h11_does(name: str) -> None:
    data = head(
        b"GET /a?b=|{}^ HTTP/1.1",
        b"Host:   example.com  \t",
        b"X-Empty:",
        b"Transfer-Encoding: Chunked",
        b"X-Latin: caf\xe9",
        b"x-repeat: 1",
        b"X-Repeat: 2",
    )
    got = parse(name, data + b"0\r\n\r\n")
    assert got.head is not None
    assert (got.head.method, got.head.target, got.head.http_version) == (b"GET", b"/a?b=|{}^", b"1.1")
    assert got.headers == [
        (b"host", b"example.com"),
        (b"x-empty", b""),
        (b"transfer-encoding", b"chunked"),
        (b"x-latin", b"caf\xe9"),
        (b"x-repeat", b"1"),
        (b"x-repeat", b"2"),
    ]


@pytest.mark.parametrize("name", BACKENDS)
def test_a_websocket_handshake_ends_with_its_head_and_hands_back_the_first_frame(name: str) -> None:
    data = head(
        b"GET /ws HTTP/1.1",
        b"Host: a",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
    )
    frame = b"\x81\x85abcd" + bytes(b ^ b"abcd"[i % 4] for i, b in enumerate(b"hello"))  # a masked "hello"
    for feed in FEEDS.values():
        got = parse(name, data + frame, feed)
        assert (got.head.method, got.body, got.ended, got.trailing) == (b"GET", b"", True, frame)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", BACKENDS)
def test_a_head_without_its_end_waits_and_an_endless_one_is_431(name: str) -> None:
    partial = parse(name, b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert (partial.head, partial.ended, partial.error) == (None, False, None)
    small = replace(LIMITS, max_head_bytes=1024)
    parser = PARSERS[name](small)
    parser.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
    with pytest.raises(ParseError) as caught:
        parser.next_event()
    assert caught.value.status == 431


@pytest.mark.parametrize("name", BACKENDS)
def test_endless_trailers_are_431_not_buffered(name: str) -> None:
    """A trailer section (or chunk-size line) read in pieces must not grow past the head limit (h11's
    max_incomplete_event_size); llhttp alone would keep it all in memory."""
    small = replace(LIMITS, max_head_bytes=1024)
    parser = PARSERS[name](small)
    parser.receive_data(CHUNKED + b"1\r\nx\r\n0\r\nX-Trailer: ")
    for _ in range(40):
        try:
            parser.receive_data(b"a" * 100)
            while parser.next_event() is not NEED_DATA:
                pass
        except ParseError as exc:
            assert exc.status == 431
            return
    pytest.fail("a 4 KB trailer field was buffered under a 1 KB limit")


@pytest.mark.parametrize("name", BACKENDS)
def test_events_before_an_error_come_first(name: str) -> None:
    parser = PARSERS[name](LIMITS)
    parser.receive_data(CHUNKED + b"5\r\nhello\r\nzz\r\n")
    kinds = []
    with pytest.raises(ParseError) as caught:
        while True:
            kinds.append(type(parser.next_event()).__name__)
    assert kinds[0] == "RequestHead" and "Data" in kinds and caught.value.status == 400


def test_unknown_and_missing_parsers_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="choices: h11, httptools"):
        parser_class("picohttpparser")
    monkeypatch.setattr(parsers, "_optional", lambda module: None)
    with pytest.raises(MissingParserPackage, match=r"--http httptools needs .*layercake\[servers\]"):
        parser_class("httptools")
    assert parser_class("h11") is parsers.H11Parser


FINE = [m for m, (_, expected) in MESSAGES.items() if isinstance(expected, bytes)]


@pytest.mark.parametrize("first", FINE)
@pytest.mark.parametrize("name", BACKENDS)
def test_a_renewed_parser_reads_the_next_message_as_a_fresh_one_does(name: str, first: str) -> None:
    """The connection asks the last cycle's parser to ``renew()`` before it makes a fresh one: whatever came first, a
    parser that says yes must give every next message exactly a fresh parser's events and errors."""
    for second, (data, _) in MESSAGES.items():
        parser = PARSERS[name](LIMITS)
        assert parse(name, MESSAGES[first][0], parser=parser).ended
        if not parser.renew():
            continue
        assert parse(name, data + NEXT, parser=parser) == parse(name, data + NEXT), (first, second)


@pytest.mark.parametrize("name", [b for b in BACKENDS if b.values[0] == "httptools"])
def test_httptools_keeps_one_llhttp_across_keep_alive_messages_only(name: str) -> None:
    """Reuse is the point (one llhttp per connection, as uvicorn); after a message llhttp will not follow -- a
    closing one, an upgrade -- or an error, the connection gets a fresh parser."""
    renews = {}
    for message in ("get", "chunked", "unknown-method", "http10", "upgrade-with-body", "chunk-size-not-hex"):
        parser = PARSERS[name](LIMITS)
        parse(name, MESSAGES[message][0], parser=parser)
        renews[message] = parser.renew()
    assert renews == {
        "get": True,
        "chunked": True,
        "unknown-method": True,
        "http10": False,  # HTTP/1.0 without keep-alive: llhttp refuses bytes after it
        "upgrade-with-body": False,  # llhttp stops at an upgrade; the body came through a second one
        "chunk-size-not-hex": False,
    }
    parser = PARSERS[name](LIMITS)
    parse(name, head(b"GET / HTTP/1.1", b"Connection: close"), parser=parser)
    assert not parser.renew()


# --- the raw corpus: the strict gate, then every parser -------------------------------------------------------------

_HEAD_END = re.compile(rb"\r?\n\r?\n")


def through_the_gate(name: str, raw: bytes, step: int | None) -> list[object]:
    """What the connection would see for each request in ``raw``: the gate's status, or the parser's outcome."""
    answers: list[object] = []
    while raw:
        while raw.startswith(b"\r\n"):  # RFC 9112 §2.2: empty lines before a request line are ignored
            raw = raw[2:]
        end = _HEAD_END.search(raw)
        if end is None:
            answers.append(("incomplete head", raw))
            break
        rejection = check_head(raw[: end.end()], LIMITS)
        if rejection is not None:
            answers.append(("gate", rejection.status))
            break
        got = parse(name, raw, step)
        if got.error is not None or not got.ended:
            answers.append(("parser", got.error, got.ended))
            break
        answers.append((got.head, got.headers, got.body))
        raw = got.trailing
    return answers


CORPUS = load_corpus()


@pytest.mark.parametrize("feed", FEEDS.values(), ids=FEEDS.keys())
@pytest.mark.parametrize("name", [b for b in BACKENDS if b.values[0] != "h11"])
def test_the_corpus_gets_h11s_answers_from_every_parser(name: str, feed: int | None) -> None:
    differences = {
        case.id: (through_the_gate("h11", case.raw, feed), mine)
        for case in CORPUS
        if (mine := through_the_gate(name, case.raw, feed)) != through_the_gate("h11", case.raw, feed)
    }
    assert differences == {}
    assert len(CORPUS) > 100
