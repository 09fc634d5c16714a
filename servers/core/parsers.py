"""Request parsers behind the connection: one request cycle's head and body, from bytes to events.

Theory of operation
-------------------
The connection (``connection.py``) decides *what to do*; a parser only says *what was sent*.  It is given, once per
request cycle, a head that already passed the strict gate (``strict.py``) followed by whatever bytes came after it,
and it yields events:

    RequestHead, then Data* , then EndOfMessage        (or raises ParseError)

and, once the message is complete, gives back the bytes it did not parse (``trailing_data``): the start of the next,
pipelined request, which goes back through the strict gate before any parser sees it -- no parser ever reads a head
our checks have not seen.  So a parser serves one request cycle at a time: for the next one the connection asks it to
``renew()`` itself, and makes a fresh parser when it cannot (h11's server-side ``Connection`` only starts a new cycle
once it has sent the response too, which ours never sends through it; llhttp starts the next message by itself after
a keep-alive one, as uvicorn relies on).

A parser is small on purpose, so that two of them can be compared line by line:

* :class:`H11Parser` -- h11, the readable reference (pure Python; ``h11.Connection(h11.SERVER)``, one per cycle).
* :class:`HttptoolsParser` -- httptools, Python bindings to llhttp (node's parser, in C), the one uvicorn uses.
  llhttp is a callback parser that parses everything it is given, pipelined requests included; the class says how
  it is made to stop at the end of one message, and where llhttp's answers differ from h11's.
* :class:`H11MypycParser` -- h11's exact code compiled to C with mypyc (``h11-mypyc`` on PyPI, imported as
  ``h11_mypyc`` beside h11).  The same lines as the reference, so the difference it makes is the price of the
  interpreter alone; the difference between it and httptools is the price of h11's design (regexes, a state
  machine, an event object per step) against llhttp's generated C state machine.

``PARSERS`` names them; ``--http NAME`` on both scratch servers picks one.  httptools and h11-mypyc are optional
(``pip install 'layercake[servers]'``); :func:`parser_class` names the extra when one is missing.

What a parser deliberately does not do: limits (the connection counts body bytes; the head was measured by the
gate; a parser only bounds what it buffers itself, chunk-size lines and trailers), ``100 Continue``, keep-alive, timeouts, EOF handling (the connection turns an EOF in the middle of a body into
a ``BodyError`` itself and never feeds ``b""`` to a parser).  Those are decisions, and decisions live in one place.
"""

from __future__ import annotations

import importlib
from collections import deque
from types import ModuleType
from typing import Any, Protocol

import h11

from servers.core.events import NEED_DATA, Data, EndOfMessage, RequestHead, Sentinel
from servers.core.limits import Limits

__all__ = [
    "PARSERS",
    "H11MypycParser",
    "H11Parser",
    "HttptoolsParser",
    "MissingParserPackage",
    "ParseError",
    "RequestParser",
    "parser_class",
]


def _optional(module: str) -> ModuleType | None:
    """An optional parser package, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


httptools: Any = _optional("httptools")  # llhttp's bindings, in the servers extra (uvicorn[standard])
_h11_mypyc = _optional("h11_mypyc")


class ParseError(Exception):
    """The bytes are not a valid HTTP/1.1 message (the client's fault); ``status`` is what to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestParser(Protocol):
    """The interface the connection uses; see the module docstring for the event order."""

    name: str

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> RequestHead | Data | EndOfMessage | Sentinel: ...

    @property
    def trailing_data(self) -> bytes: ...

    def renew(self) -> bool:
        """Be ready for the next request cycle's head, the last message being complete; False if this parser cannot
        (the connection then makes a fresh one)."""
        ...


class H11Parser:
    """h11 as a request parser.

    ``max_incomplete_event_size`` bounds what h11 buffers while waiting for a complete event -- chunk-size lines and
    trailers, since the head was already measured by the gate.  After ``EndOfMessage`` h11 keeps any further bytes
    in its buffer (its state is ``DONE``, it parses nothing more) and ``trailing_data`` returns them.

    ``lib`` is the h11 module: :class:`H11MypycParser` is this class with the compiled copy.
    """

    name = "h11"
    lib: ModuleType = h11
    __slots__ = ("_h11",)

    def __init__(self, limits: Limits) -> None:
        self._h11 = self.lib.Connection(self.lib.SERVER, max_incomplete_event_size=limits.max_head_bytes)

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    def next_event(self) -> RequestHead | Data | EndOfMessage | Sentinel:
        lib = self.lib
        try:
            event = self._h11.next_event()
        except lib.RemoteProtocolError as exc:  # a malformed chunk, or a head h11 refuses although the gate did not
            raise ParseError(exc.error_status_hint, str(exc)) from None
        kind = type(event)  # one type() and identity checks: this runs for every event of every request
        if kind is lib.Data:
            return Data(bytes(event.data))
        if kind is lib.EndOfMessage:
            return _END
        if kind is lib.Request:
            # A list: every consumer iterates the headers at least once, and iterating h11's Headers (a Sequence
            # whose items are fetched one __getitem__ call at a time) costs twice what its raw_items() list does.
            headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
            return RequestHead(event.method, event.target, event.http_version, headers)
        return NEED_DATA  # NEED_DATA, or PAUSED once the message is complete: either way, nothing to parse now

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._h11.trailing_data[0])

    def renew(self) -> bool:
        return False  # h11.Connection.start_next_cycle() needs our side DONE too, and responses bypass h11


_END = EndOfMessage()


class H11MypycParser(H11Parser):
    """h11's own code compiled with mypyc: the same parser, without the interpreter in the way."""

    name = "h11-mypyc"
    lib = _h11_mypyc or h11  # h11 only as a placeholder when it is not installed: __init__ refuses to run then
    __slots__ = ()

    def __init__(self, limits: Limits) -> None:
        if _h11_mypyc is None:
            raise MissingParserPackage("h11_mypyc")
        super().__init__(limits)


# --- httptools ------------------------------------------------------------------------------------------------------
#
# How llhttp is made to stop after one message.  llhttp parses whatever it is fed and, past the end of a message,
# starts on the next one: fed a whole pipelined buffer it would call ``on_message_begin`` and ``on_url`` for a head
# our gate has never seen.  httptools offers no pause and no "bytes consumed" (llhttp's error position is only
# exposed for an upgrade), so we never feed it past a point where the message could end:
#
# * the head: exactly up to its empty line (``CRLF CRLF``: the gate refused every bare LF);
# * a ``Content-Length`` body: exactly that many bytes;
# * a chunked body: up to and including each ``CRLF CRLF`` in the data, because that is the only place a chunked
#   message can end (``last-chunk CRLF``, or the trailer section's final ``CRLF``: RFC 9112 §7.1).  The usual body
#   has one, at its end, so this is one ``feed_data`` per read; data that happens to contain ``CRLF CRLF`` costs one
#   call more per occurrence.
#
# Whatever is left is the next request, held back for ``trailing_data``.  As a guard, a second ``on_message_begin``
# -- llhttp starting a message we did not mean to feed it -- is an error, never a parse.  Measured (``python -m
# layercake.bench.parsers``): stopping costs one ``bytes.find`` per read, a C scan; what this class adds to llhttp
# alone is the Python around it -- 13 Python calls for a GET (our callbacks, the events) against llhttp's 4 bare
# callbacks, and 87 for h11.
#
# Where llhttp and h11 differ, and what makes the answers equal (the strict gate has already refused every head
# either parser would read differently -- bare LF, obs-fold, whitespace before the colon, CL with TE, ...):
#
# ==================================  ==========================  ==========================  =====================
# input                               h11                         llhttp                      we
# ==================================  ==========================  ==========================  =====================
# a method llhttp does not know        any token                   400 (fixed method table)    llhttp is fed ``GET``
#   (``FOO``, lowercase ``get``)                                                              in its place; the
#                                                                                             event has the real one
# trailing whitespace in a value       stripped (RFC 9110 §5.5)    kept                        stripped
# ``Transfer-Encoding: Chunked``       value lowercased            kept                        lowercased
# ``Upgrade`` + ``Connection:          reads the body, then        skips the body: the bytes   the body is read by a
#   upgrade`` with a body              stops (PAUSED)              after the head "are the     second llhttp fed the
#                                                                  new protocol"               framing only
# chunk size followed by SP / HTAB     accepted (BWS)              400                         accepted (llhttp's
#                                                                                             leniency flag)
# chunk extension not token[=value]    accepted, ignored           400                         differs (see below)
# bare LF or a control byte in a       accepted                    400                         differs (see below)
#   trailer field
# chunk-size line or trailers longer   431 (incomplete event too   no limit                    431, counted per read
#   than max_head_bytes                large)
# ==================================  ==========================  ==========================  =====================
#
# The two "differs" rows are body syntax the gate never sees (it reads heads); in both h11 is the lenient one and
# llhttp follows RFC 9112 §7.1.1 / §7.1.2 to the letter.  No client we know sends either, and making h11 strict
# would mean re-parsing chunk lines ourselves -- the work a parser is for.


class HttptoolsParser:
    """httptools (llhttp) as a request parser: llhttp's callbacks become our events.

    The callbacks (``on_url``, ``on_header``, ``on_headers_complete``, ``on_body``, ``on_message_complete``) run
    inside ``feed_data`` and append to ``_events``; ``next_event`` hands them out.  An error raised by llhttp is
    kept and raised by ``next_event`` after the events that came before it, as h11 would.
    """

    name = "httptools"
    __slots__ = (
        "_limits",
        "_llhttp",
        "_events",
        "_buffer",
        "_state",
        "_remaining",
        "_tail",
        "_framing",
        "_error",
        "_method",
        "_url",
        "_headers",
        "_head_sent",
        "_begun",
        "_body_bytes",
        "_reusable",
    )

    def __init__(self, limits: Limits) -> None:
        if httptools is None:
            raise MissingParserPackage("httptools")
        self._limits = limits
        self._llhttp: Any = None  # created when the first head is complete; kept for the next ones (renew)
        self._events: deque[RequestHead | Data | EndOfMessage] = deque()
        self._new_message()

    def _new_message(self) -> None:
        self._buffer = b""  # received and not yet fed to llhttp
        self._state = _HEAD
        self._remaining = 0  # Content-Length bytes still to feed
        self._tail = b""  # the last bytes fed of a chunked body: a CRLF CRLF may straddle two reads
        self._framing = 0  # chunk-size line and trailer bytes since the last body byte (the 431 bound)
        self._error: ParseError | None = None
        self._method = b""
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_sent = False
        self._begun = False
        self._body_bytes = 0  # what on_body delivered (only for the 431 bound)
        self._reusable = False  # llhttp may parse the next message: it ended keep-alive, not upgraded, no error

    # --- the RequestParser interface --------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buffer += data
        if self._state is not _DONE and self._error is None:
            try:
                self._feed()
            except ParseError as exc:
                self._error = exc
                self._state = _DONE
                self._reusable = False
            if self._state is _DONE and not self._reusable:
                # llhttp holds our bound callbacks and we hold llhttp: a reference cycle, which only the cyclic
                # garbage collector can free.  Left for it, one per request, it ran a collection every ~70
                # requests -- 7% of scratch-asgi's CPU under wrk (py-spy --native).  One per keep-alive
                # connection is uvicorn's price too (its protocol and its llhttp hold each other); a message
                # after which llhttp will parse nothing more lets go of it now.  (A parser abandoned mid-message,
                # when a connection breaks, is left to the collector: that is rare.)
                self._llhttp = None

    def next_event(self) -> RequestHead | Data | EndOfMessage | Sentinel:
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return NEED_DATA

    @property
    def trailing_data(self) -> bytes:
        return self._buffer if self._state is _DONE else b""

    def renew(self) -> bool:
        # Speed (issue 12): one llhttp per connection, as uvicorn has, not one per request -- making one costs
        # about as much as parsing a GET with it (0.8 us, timeit).  After a keep-alive message llhttp begins the
        # next one by itself; it is fed nothing until the connection has the next head through the gate.
        if not self._reusable or self._state is not _DONE or self._events:
            return False
        self._new_message()
        return True

    # --- feeding llhttp exactly one message -------------------------------------------------------------------------

    def _feed(self) -> None:
        if self._state is _HEAD:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._limits.max_head_bytes:  # as h11's max_incomplete_event_size
                    raise ParseError(431, "request head too large")
                return
            end += 4
            if end == len(self._buffer):  # the usual case, a GET and nothing after it: no slicing
                head, self._buffer = self._buffer, b""
            else:
                head, self._buffer = self._buffer[:end], self._buffer[end:]
            self._start(head)
        if self._state is _LENGTH:
            n = min(self._remaining, len(self._buffer))
            if n:
                piece, self._buffer = self._buffer[:n], self._buffer[n:]
                self._remaining -= n
                self._execute(piece)
        elif self._state is _CHUNKED:
            self._feed_chunked()

    def _start(self, head: bytes) -> None:
        """Feed the complete head to llhttp (the first head on this connection: to a new one) and decide how the
        body is framed."""
        self._method = head[: head.find(b" ")]
        parser = self._llhttp
        if parser is None:
            self._llhttp = parser = httptools.HttpRequestParser(self)
        try:
            self._execute(head)
        except _UnknownMethod:
            # llhttp knows a fixed table of methods; h11 (and RFC 9110 §9.1) any token.  The method does not
            # change how llhttp frames a request body, so it parses the same head with GET in its place.
            self._llhttp = parser = httptools.HttpRequestParser(self)
            self._begun = False
            self._execute(b"GET" + head[len(self._method) :])
        if self._state is _DONE:
            return  # no body: llhttp completed the message with the head
        framing = _framing_of(self._headers)
        if self._state is _UPGRADE:  # llhttp skipped the body; a second llhttp reads it (see the table above)
            self._llhttp = parser = httptools.HttpRequestParser(_BodyOnly(self))
            if framing == b"chunked":
                parser.feed_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                parser.feed_data(b"POST / HTTP/1.1\r\nContent-Length: " + framing + b"\r\n\r\n")
        if framing == b"chunked":
            # h11 accepts whitespace after the chunk size (RFC 9112 §7.1.1 BWS); llhttp only with this flag (set
            # here, not for every request: only a chunked body reads it).
            parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
            self._state = _CHUNKED
        else:
            self._state = _LENGTH
            self._remaining = int(framing)

    def _feed_chunked(self) -> None:
        """Feed the chunked body up to and including each CRLF CRLF, where the message may end."""
        while self._buffer and self._state is _CHUNKED:
            seen = self._tail + self._buffer
            end = seen.find(b"\r\n\r\n")
            if end < 0:
                piece, self._buffer = self._buffer, b""
            else:
                cut = end + 4 - len(self._tail)
                piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._tail = (self._tail + piece)[-3:]
            body_before = self._body_bytes
            self._execute(piece)
            # A chunk-size line or a trailer section must not grow without bound (h11: max_incomplete_event_size;
            # httptools would buffer a trailer's name and value in memory however long).  Like h11, counted per read.
            if self._body_bytes != body_before:
                self._framing = 0
            else:
                self._framing += len(piece)
            if self._state is _CHUNKED and self._framing > self._limits.max_head_bytes:
                raise ParseError(431, "chunk-size line or trailer section too large")

    def _execute(self, data: bytes) -> None:
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the end of a head that asks for an upgrade (or CONNECT); on_headers_complete decided what next
        except httptools.HttpParserInvalidMethodError:
            if self._head_sent:  # pragma: no cover - a method error can only come from a request line
                raise ParseError(400, "invalid method") from None
            raise _UnknownMethod from None
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, ParseError):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserError as exc:
            raise ParseError(400, f"{exc} (llhttp)") from None

    # --- llhttp's callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._begun:  # llhttp started a second message: we fed it too much (see "How llhttp is made to stop")
            raise ParseError(400, "parser read past the end of the message")
        self._begun = True

    def on_url(self, url: bytes) -> None:
        self._url += url  # llhttp may deliver a URL in pieces (not here: we feed whole heads)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_sent:  # after the head these are trailer fields, which our events drop as h11's do
            # llhttp strips whitespace before a value, h11 on both sides (RFC 9110 §5.5: OWS is not part of it).
            name = name.lower()
            value = value.rstrip(b" \t")
            if name == b"transfer-encoding":  # h11 lowercases it ("transfer-coding names are case-insensitive")
                value = value.lower()
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_sent = True
        parser = self._llhttp
        version = parser.get_http_version()
        self._events.append(
            RequestHead(self._method, self._url, _VERSIONS.get(version) or version.encode(), self._headers)
        )
        if parser.should_upgrade():
            # llhttp stops parsing at an upgrade (or CONNECT): to it, what follows is the new protocol.
            if _framing_of(self._headers) != b"0":
                self._state = _UPGRADE  # llhttp will skip the body and call on_message_complete: not the end for us
        else:
            # Asked now: llhttp clears a message's flags as it completes.  After a closing message (Connection:
            # close, HTTP/1.0 without keep-alive) it refuses further bytes -- the connection closes then anyway.
            self._reusable = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        if self._state is _UPGRADE:
            return  # llhttp skipped an upgrade request's body; the body-only llhttp will end the message
        self._events.append(_END)
        self._state = _DONE


class _BodyOnly:
    """The callbacks of the second llhttp that reads an upgrade request's body: only the body counts."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, owner: HttptoolsParser) -> None:
        self.on_body = owner.on_body
        self.on_message_complete = owner.on_message_complete


class _UnknownMethod(Exception):
    """llhttp refused the method: parse the head again with GET in its place."""


def _framing_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``b"chunked"`` or the Content-Length (``b"0"`` without one); the gate guaranteed at most one of them."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return b"chunked"
        if name == b"content-length":
            return value
    return b"0"


_HEAD, _LENGTH, _CHUNKED, _UPGRADE, _DONE = (Sentinel(n) for n in ("HEAD", "LENGTH", "CHUNKED", "UPGRADE", "DONE"))
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}


# --- the table ------------------------------------------------------------------------------------------------------


class MissingParserPackage(ImportError):
    """A parser's package is not installed; the message names the pip extra."""

    def __init__(self, package: str) -> None:
        super().__init__(
            f"--http {_NAME_OF.get(package, package)} needs the {package} package: pip install 'layercake[servers]'"
        )
        self.package = package


_NAME_OF = {"httptools": "httptools", "h11_mypyc": "h11-mypyc"}

#: ``--http`` name -> parser class.  A backend is added here and nowhere else.
PARSERS: dict[str, type[RequestParser]] = {"h11": H11Parser, "httptools": HttptoolsParser, "h11-mypyc": H11MypycParser}
#: ``--http`` name -> the module it needs beyond h11 (in the ``servers`` extra).
REQUIRES: dict[str, str] = {"httptools": "httptools", "h11-mypyc": "h11_mypyc"}


def parser_class(name: str) -> type[RequestParser]:
    """The parser called ``name``; an unknown one raises ValueError listing the choices, a missing package
    :class:`MissingParserPackage` naming the extra."""
    try:
        cls = PARSERS[name]
    except KeyError:
        raise ValueError(f"unknown HTTP parser {name!r}; choices: {', '.join(PARSERS)}") from None
    module = REQUIRES.get(name)
    if module is not None and _optional(module) is None:
        raise MissingParserPackage(module)
    return cls
