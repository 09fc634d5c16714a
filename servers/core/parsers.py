"""Request parsers behind the connection: one request cycle's head and body, from bytes to events.

Theory of operation
-------------------
The connection (``connection.py``) decides *what to do*; a parser only says *what was sent*.  It is given, once per
request cycle, a head that already passed the strict gate (``strict.py``) followed by whatever bytes came after it,
and it yields events:

    RequestHead, then Data* , then EndOfMessage        (or raises ParseError)

and, once the message is complete, gives back the bytes it did not parse (``trailing_data``): the start of the next,
pipelined request, which goes back through the strict gate before any parser sees it.  That is why a parser lives for
one cycle only: no parser ever reads a head our checks have not seen.

A parser is small on purpose, so that two of them can be compared line by line:

* :class:`H11Parser` -- h11, the readable reference (pure Python; ``h11.Connection(h11.SERVER)``, one per cycle).

``PARSERS`` names them; ``--http NAME`` on both scratch servers picks one.

What a parser deliberately does not do: limits (the connection counts body bytes; the head was measured by the
gate), ``100 Continue``, keep-alive, timeouts, EOF handling (the connection turns an EOF in the middle of a body into
a ``BodyError`` itself and never feeds ``b""`` to a parser).  Those are decisions, and decisions live in one place.
"""

from __future__ import annotations

from typing import Protocol

import h11

from servers.core.events import NEED_DATA, Data, EndOfMessage, RequestHead, Sentinel
from servers.core.limits import Limits

__all__ = ["PARSERS", "H11Parser", "ParseError", "RequestParser", "parser_class"]


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


class H11Parser:
    """h11 as a request parser.

    ``max_incomplete_event_size`` bounds what h11 buffers while waiting for a complete event -- chunk-size lines and
    trailers, since the head was already measured by the gate.  After ``EndOfMessage`` h11 keeps any further bytes
    in its buffer (its state is ``DONE``, it parses nothing more) and ``trailing_data`` returns them.
    """

    name = "h11"
    __slots__ = ("_h11",)

    def __init__(self, limits: Limits) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    def next_event(self) -> RequestHead | Data | EndOfMessage | Sentinel:
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:  # a malformed chunk, or a head h11 refuses although the gate did not
            raise ParseError(exc.error_status_hint, str(exc)) from None
        if isinstance(event, h11.Data):
            return Data(bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            return _END
        if isinstance(event, h11.Request):
            # list(): iterating h11's Headers object is slow, and every consumer iterates it at least once.
            return RequestHead(event.method, event.target, event.http_version, list(event.headers))
        return NEED_DATA  # NEED_DATA, or PAUSED once the message is complete: either way, nothing to parse now

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._h11.trailing_data[0])


_END = EndOfMessage()

#: ``--http`` name -> parser class.  A backend is added here and nowhere else.
PARSERS: dict[str, type[RequestParser]] = {"h11": H11Parser}


def parser_class(name: str) -> type[RequestParser]:
    """The parser called ``name``; an unknown one raises ValueError listing the choices."""
    try:
        return PARSERS[name]
    except KeyError:
        raise ValueError(f"unknown HTTP parser {name!r}; choices: {', '.join(PARSERS)}") from None
