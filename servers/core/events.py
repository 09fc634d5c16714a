"""What a server connection tells its server: the events of :mod:`servers.core.connection`.

Theory of operation
-------------------
h11 turns bytes into events (``Request``, ``Data``, ``EndOfMessage``) and makes its caller ask for them with
``next_event()``; our connection does the same one level up.  Its events say not only what the client sent but
what the server must do next, so that neither server has to decide anything about HTTP:

=====================  ===========================================================================================
event                  the server ...
=====================  ===========================================================================================
``RequestHead``        starts a request cycle: builds the environ or scope and runs the application
``WebSocketRequest``   (scratch-asgi only) starts a WebSocket cycle: the handshake waits for the app's answer
``Data``               hands a piece of the request body to the application
``EndOfMessage``       tells the application the body is complete
``BodyError``          makes the application's body read fail (413, 400, 408); the connection answers it if the
                       application does not
``Rejected``           writes ``data`` (a complete error response with ``Connection: close``), then, if
                       ``linger``, shuts down its sending side and keeps discarding input until the connection's
                       deadline; else closes
``NEED_DATA``          reads the socket (and feeds what it got to ``receive_data``)
``PAUSED``             stops reading: a pipelined request waits until the current response is complete
``CLOSED``             closes the socket: the client went away, or the connection is finished with it
=====================  ===========================================================================================

``NEED_DATA``, ``PAUSED`` and ``CLOSED`` are sentinels, compared with ``is``, as h11's are.  The others are small
records, never changed once made.  :class:`RequestHead` is also what the parsers produce and what ``build_environ`` and
``http_scope`` read: it has the same four fields as ``h11.Request`` (``method``, ``target``, ``http_version``,
``headers``), so the environ and scope builders take either.

What this module deliberately does not do: anything.  It is the vocabulary, so that a reader can learn it first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CLOSED",
    "NEED_DATA",
    "PAUSED",
    "BodyError",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Rejected",
    "RequestHead",
    "Sentinel",
    "WebSocketRequest",
]

Headers = list[tuple[bytes, bytes]]


class Sentinel:
    """A named singleton (``NEED_DATA``, ``PAUSED``, ``CLOSED``); its repr is its name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")
PAUSED: Final = Sentinel("PAUSED")
CLOSED: Final = Sentinel("CLOSED")


# RequestHead and Data are made once or more per request; ``frozen=True`` would make each construction pay an
# ``object.__setattr__`` per field (1.1 µs per RequestHead here, measured with timeit), so these two are read-only
# by convention.  The rarer events below are frozen.
@dataclass(slots=True)
class RequestHead:
    """A request head that passed the strict gate and the parser.

    ``headers`` are ``(lowercased name, value)`` pairs in the order received, repeats kept (RFC 9110 §5.3: the
    order of field lines with the same name matters).  ``http_version`` is ``b"1.1"`` or ``b"1.0"``.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: Headers = field(repr=False)


@dataclass(frozen=True, slots=True)
class WebSocketRequest:
    """A valid WebSocket opening handshake (RFC 6455 §4.2.1): the application decides whether to accept it."""

    head: RequestHead


@dataclass(slots=True)
class Data:
    """A piece of the request body, de-chunked."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request body is complete (or there was none)."""


@dataclass(frozen=True, slots=True)
class BodyError:
    """Reading the request body failed, by the client's fault: the status a server answers with and why."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The connection refused a request: send ``data``; then linger (``linger``) or close at once."""

    status: int
    reason: str
    rule: str
    data: bytes = field(repr=False)
    linger: bool = True


Event = RequestHead | WebSocketRequest | Data | EndOfMessage | BodyError | Rejected | Sentinel
