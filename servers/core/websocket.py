"""WebSockets for the ASGI server, sans-I/O: the RFC 6455 opening handshake on top of h11, and a session that
turns frames into ASGI ``websocket.*`` messages and back.

Theory of operation
-------------------
A WebSocket starts as an HTTP/1.1 request with ``Upgrade: websocket`` (RFC 6455 §4.1).  h11 understands upgrades:
after such a request it pauses instead of parsing further bytes (the client may be about to speak another
protocol), and hands back the bytes it did not parse (``trailing_data``) -- the first frames, if the client was
quick.  So the handshake is read by the same h11 cycle as any request; :func:`handshake_problem` checks the
RFC 6455 §4.2.1 requirements and :func:`accept_response` writes the ``101 Switching Protocols`` with
``Sec-WebSocket-Accept`` (§4.2.2).

Frames are parsed and written by ``wsproto``'s low-level ``Connection`` (not its ``WSConnection``, which would do
the handshake with its own h11 instance).  Why wsproto rather than frames by hand: framing itself is short, but
the parts that are easy to get wrong -- client masking is required (§5.1), control frames ≤ 125 bytes and never
fragmented (§5.5), UTF-8 validated incrementally across fragments (§8.1), close-code validity (§7.4) -- are done
and tested there, and each failure comes out as a close code (1002 protocol error, 1007 invalid data).  What this
module adds is the ASGI side: reassembling fragmented messages into one ``websocket.receive``, the message size
limit (close 1009, §7.4.1 "a message that is too big for it to process"), answering pings, and the close
handshake: a close from the client is echoed and reported as ``websocket.disconnect`` with its code; a
protocol error is answered with a close frame carrying 1002/1007 rather than a silently dropped socket.

What this module deliberately does not do: extensions (``permessage-deflate``, RFC 7692).  We never agree to one,
which RFC 6455 §9.1 allows, so frames are exactly what the app sent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from servers.core.asgi import ASGIProtocolError, check_headers
from servers.core.events import RequestHead
from servers.core.http import ClientDisconnected
from servers.core.writer import ResponseError, serialize_head

__all__ = ["Outcome", "WebSocketSession", "accept_response", "handshake_problem", "is_websocket_upgrade"]


def _header(request: RequestHead, name: bytes) -> bytes | None:
    values = [value for key, value in request.headers if key == name]
    return b", ".join(values) if values else None


def _tokens(value: bytes | None) -> set[bytes]:
    return {token.strip().lower() for token in (value or b"").split(b",")}


def is_websocket_upgrade(request: RequestHead) -> bool:
    """Did the client ask for a WebSocket?  (RFC 6455 §4.1: ``Upgrade: websocket`` and ``Connection: Upgrade``.)"""
    return b"websocket" in _tokens(_header(request, b"upgrade")) and b"upgrade" in _tokens(
        _header(request, b"connection")
    )


def handshake_problem(request: RequestHead) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
    """``None`` for a valid opening handshake, else ``(status, reason, extra headers)`` to refuse it with.

    RFC 6455 §4.2.1: the request must be a GET, HTTP/1.1 or later, with a Host, ``Sec-WebSocket-Key`` (16 bytes,
    base64) and ``Sec-WebSocket-Version: 13``; for any other version the server answers 426 with the versions it
    speaks (§4.4)."""
    if request.method != b"GET":
        return 400, "WebSocket handshake must be a GET (RFC 6455 §4.1)", []
    if request.http_version != b"1.1":
        return 400, "WebSocket handshake needs HTTP/1.1 (RFC 6455 §4.1)", []
    version = _header(request, b"sec-websocket-version")
    if version is None or version.strip() != b"13":
        return 426, "unsupported Sec-WebSocket-Version (RFC 6455 §4.4)", [(b"sec-websocket-version", b"13")]
    key = _header(request, b"sec-websocket-key") or b""
    try:
        if len(base64.b64decode(key.strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        return 400, "Sec-WebSocket-Key must be 16 bytes, base64-encoded (RFC 6455 §4.2.1)", []
    return None


def accept_response(request: RequestHead, message: dict[str, Any]) -> bytes:
    """The ``101 Switching Protocols`` for a ``websocket.accept`` message (RFC 6455 §4.2.2)."""
    key = (_header(request, b"sec-websocket-key") or b"").strip()
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", generate_accept_token(key)),
    ]
    subprotocol = message.get("subprotocol")
    if subprotocol is not None:
        if not isinstance(subprotocol, str):
            raise ASGIProtocolError(f"websocket.accept 'subprotocol' must be a str or None, got {subprotocol!r}")
        headers.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    for name, value in check_headers(message.get("headers", ()), "websocket.accept"):
        if name.lower() == b"sec-websocket-protocol":
            raise ASGIProtocolError(
                "websocket.accept: set the subprotocol with 'subprotocol', not a header (ASGI WebSocket spec, Accept)"
            )
        headers.append((name, value))
    try:
        return serialize_head(101, headers)
    except ResponseError as exc:
        raise ASGIProtocolError(f"websocket.accept: {exc}") from None


@dataclass
class Outcome:
    """What the server must do after feeding bytes: deliver ``messages`` to the app, write ``output``, and close
    the TCP connection (after writing) if ``close``."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    output: bytes = b""
    close: bool = False


class WebSocketSession:
    """One accepted WebSocket: frames in, ASGI messages out, and the reverse for ``send``.

    ``closed_by`` records who started the close (``"client"``, ``"server"``, ``"error"``, ``"shutdown"``); once set, ``send``
    of data raises :class:`ClientDisconnected` if the client went away, or :class:`ASGIProtocolError` if the app
    itself closed -- ASGI spec 2.4: a send after the connection closed must raise.
    """

    def __init__(self, max_message: int, trailing_data: bytes = b"") -> None:
        self.max_message = max_message
        self.ws = Connection(ConnectionType.SERVER)
        self.closed_by: str | None = None
        self.close_code: int | None = None
        self._parts: list[Any] = []
        self._size = 0
        self._pending = trailing_data  # frames that arrived with the handshake; fed by the first receive_data

    # -- frames in ------------------------------------------------------------------------------------------
    def receive_data(self, data: bytes | None) -> Outcome:
        """Feed bytes from the socket (``None``: the TCP connection was lost)."""
        outcome = Outcome()
        if self._pending:
            data, self._pending = self._pending + (data or b""), b""
        if self.ws.state is ConnectionState.CLOSED:
            return outcome
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, Message):
                self._on_message(event, outcome)
            elif isinstance(event, Ping):
                outcome.output += self.ws.send(event.response())  # RFC 6455 §5.5.2: answer with a Pong, same data
            elif isinstance(event, CloseConnection):
                self._on_close(event, outcome)
            # Pong (§5.5.3: unsolicited pongs are allowed, no response expected) needs nothing.
            if outcome.close:
                break
        return outcome

    def _on_message(self, event: Message, outcome: Outcome) -> None:
        self._parts.append(event.data)
        self._size += len(event.data)
        if self._size > self.max_message:
            # RFC 6455 §7.4.1, 1009: "an endpoint is terminating the connection because it has received a message
            # that is too big for it to process."  Limits.max_ws_message says how big.
            self._fail(1009, f"message over {self.max_message} bytes", outcome)
            return
        if event.message_finished:
            # RFC 6455 §5.4: a fragmented message is delivered to the application whole, in order.
            if isinstance(event, TextMessage):
                outcome.messages.append({"type": "websocket.receive", "text": "".join(self._parts)})
            else:
                outcome.messages.append({"type": "websocket.receive", "bytes": b"".join(self._parts)})
            self._parts, self._size = [], 0

    def _on_close(self, event: CloseConnection, outcome: Outcome) -> None:
        if self.ws.state is ConnectionState.REMOTE_CLOSING:
            # RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame,
            # the endpoint MUST send a Close frame in response" -- echoing the code, then the server closes TCP
            # first (§7.1.1).
            outcome.output += self.ws.send(event.response())
            self.closed_by, self.close_code = "client", event.code
            outcome.messages.append({"type": "websocket.disconnect", "code": event.code, "reason": event.reason or ""})
            outcome.close = True
        elif self.ws.state is ConnectionState.CLOSED:
            if self.closed_by is None:  # the connection was lost (receive_data(None)): 1006, no frame to send
                self.closed_by, self.close_code = "client", event.code
                outcome.messages.append({"type": "websocket.disconnect", "code": event.code, "reason": ""})
            outcome.close = True  # the client answered our close: the handshake is complete
        else:
            # wsproto reports a frame it could not parse as a CloseConnection while still OPEN: code 1002
            # (protocol error) or 1007 (invalid UTF-8).  Tell the client why, then close (§7.1.7 "Fail the
            # WebSocket Connection").
            self._fail(event.code, event.reason or "protocol error", outcome)

    def _fail(self, code: int, reason: str, outcome: Outcome) -> None:
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            outcome.output += self.ws.send(CloseConnection(code=code, reason=reason[:120]))
        self.closed_by, self.close_code = "error", code
        outcome.messages.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        outcome.close = True

    # -- messages out ---------------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> bytes:
        """Bytes for an app's ``websocket.send`` or ``websocket.close`` after the accept."""
        kind = message.get("type")
        if self.closed_by in ("client", "error", "shutdown"):
            raise ClientDisconnected(f"WebSocket closed ({self.closed_by}, code {self.close_code}); {kind!r} not sent")
        if self.closed_by == "server":
            raise ASGIProtocolError(f"Unexpected ASGI message {kind!r} sent, after the app sent websocket.close.")
        if kind == "websocket.send":
            data, text = message.get("bytes"), message.get("text")
            if (data is None) == (text is None):
                raise ASGIProtocolError("websocket.send needs exactly one of 'bytes' and 'text' (ASGI WebSocket spec)")
            if text is not None:
                return self.ws.send(TextMessage(data=text))
            if not isinstance(data, (bytes, bytearray)):
                raise ASGIProtocolError(f"websocket.send 'bytes' must be bytes, got {type(data).__name__}")
            return self.ws.send(BytesMessage(data=data))
        if kind == "websocket.close":
            code = message.get("code") or 1000
            reason = message.get("reason") or ""
            self.closed_by, self.close_code = "server", code
            return self.ws.send(CloseConnection(code=code, reason=reason))
        raise ASGIProtocolError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}.")

    def shutdown(self, code: int) -> bytes:
        """The server is going away: a close frame with ``code`` (1001 or 1012), unless one was already sent."""
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING) and self.closed_by is None:
            self.closed_by, self.close_code = "shutdown", code
            return self.ws.send(CloseConnection(code=code, reason="server shutting down"))
        return b""
