"""The ASGI side of the core: scopes built from request heads, and the rules an application's ``send()`` must follow.

Theory of operation
-------------------
An ASGI server calls ``await app(scope, receive, send)`` once per connection-level event (an HTTP request, a
WebSocket, the process lifespan).  ``scope`` describes it; ``receive`` and ``send`` are awaitables exchanging
dict messages.  This module holds the parts of that conversation that need no event loop:

* :func:`http_scope` and :func:`websocket_scope` -- the "Connection Scope" tables of the ASGI HTTP & WebSocket
  spec (version 2.4): ``asgi.version``/``spec_version``, ``http_version``, ``method``, ``scheme``, ``path``
  (percent-decoded and UTF-8 decoded), ``raw_path``, ``query_string``, ``root_path``, lowercased byte
  ``headers``, ``client``, ``server``, ``state`` (and ``subprotocols`` for WebSockets).
* :class:`HTTPSend` -- the HTTP send side as a three-state machine: ``http.response.start`` exactly once, then
  ``http.response.body`` until one arrives without ``more_body``, then nothing.  Any other order raises
  :class:`ASGIProtocolError` naming the message expected and the one received, like uvicorn's.  Messages are
  serialised by a ``ResponseWriter`` (``writer.py``) and the bytes returned to the server, which writes them.

The WebSocket frame side is in ``websocket.py``; lifespan needs nothing here but its message names.

What this module deliberately does not do: ASGI extensions (``http.response.trailers``, ``pathsend``,
``websocket.http.response``) -- none is advertised in ``scope["extensions"]``, so a conforming app never uses them,
and one that does gets a readable error.
"""

from __future__ import annotations

import enum
from typing import Any

from servers.core.events import RequestHead
from servers.core.http import decode_path, split_target
from servers.core.writer import ResponseError, ResponseWriter

__all__ = ["ASGI_VERSION", "ASGIProtocolError", "HTTPSend", "SendState", "http_scope", "websocket_scope"]

# ASGI spec: "asgi["version"]" is the version of the ASGI callable style (3.0: single callable); "spec_version"
# the version of the HTTP/WebSocket spec implemented (2.4 added the OSError rule for send() after disconnect).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


class ASGIProtocolError(RuntimeError):
    """The application sent a message that breaks the ASGI message order or shape; it names both."""


def http_scope(
    request: RequestHead,
    *,
    server: tuple[str, int],
    client: tuple[str, int] | None,
    state: dict[str, Any] | None,
    root_path: str = "",
) -> dict[str, Any]:
    raw_path, query = split_target(request.target)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version.decode("ascii"),
        "method": request.method.decode("ascii"),  # kept as sent; methods are case-sensitive (RFC 9110 §9.1)
        "scheme": "http",
        # ASGI HTTP spec, "path": "HTTP request target excluding any query string, with percent-encoded sequences
        # and UTF-8 byte sequences decoded into characters."  Invalid UTF-8 becomes U+FFFD rather than a crash;
        # raw_path keeps the exact bytes.
        "path": (decode_path(raw_path) if b"%" in raw_path else raw_path).decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        # ASGI: "header names should be lowercased"; the parser lowercases and keeps order and repeats.
        "headers": request.headers,
        "client": client,
        "server": server,
    }
    if state is not None:
        # ASGI lifespan spec, "Lifespan State": "the server will make a shallow copy of the state dict for each
        # request" -- so one request cannot add keys another request sees.
        scope["state"] = state.copy()
    return scope


def websocket_scope(
    request: RequestHead,
    *,
    server: tuple[str, int],
    client: tuple[str, int] | None,
    state: dict[str, Any] | None,
    root_path: str = "",
) -> dict[str, Any]:
    scope = http_scope(request, server=server, client=client, state=state, root_path=root_path)
    scope["type"] = "websocket"
    scope["scheme"] = "ws"
    del scope["method"]  # not part of the WebSocket scope
    protocols = [value for name, value in scope["headers"] if name == b"sec-websocket-protocol"]
    # RFC 6455 §4.1: Sec-WebSocket-Protocol is a comma-separated list, possibly repeated; order is preference.
    scope["subprotocols"] = [p.strip().decode("latin-1") for v in protocols for p in v.split(b",") if p.strip()]
    return scope


def check_headers(headers: Any, where: str) -> list[tuple[bytes, bytes]]:
    """ASGI: "headers: Iterable[[byte string, byte string]]".  (CR, LF and NUL are refused by the writer.)"""
    try:
        checked = [(name, value) for name, value in headers]
    except (TypeError, ValueError):
        raise ASGIProtocolError(f"{where}: 'headers' must be an iterable of [name, value] byte pairs") from None
    for name, value in checked:
        if type(name) is not bytes or type(value) is not bytes:
            raise ASGIProtocolError(f"{where}: header names and values must be bytes, got {name!r}: {value!r}")
    return checked


class SendState(enum.Enum):
    """Where an HTTP response is in the ASGI message order."""

    START = "start"  # waiting for http.response.start
    BODY = "body"  # http.response.start received; http.response.body until more_body is false
    DONE = "done"  # the final body was sent: nothing more may be


# The members as module constants for the methods below: on Python 3.11 reading ``SendState.BODY`` from the Enum
# class costs about 200 ns, a module constant a tenth of that (speed, issue 12; see connection.py's ``S``).
_START, _BODY, _DONE = SendState.START, SendState.BODY, SendState.DONE


class HTTPSend:
    """The send side of one HTTP request cycle (ASGI HTTP spec, "Response Start" and "Response Body").

    ``message(msg)`` validates ``msg`` against the state and returns the bytes to write (possibly ``b""``).
    States: :class:`SendState`, ``START`` → ``BODY`` → ``DONE``.  Serialising is the ``ResponseWriter``'s job.
    """

    __slots__ = ("writer", "state", "done")

    def __init__(self, writer: ResponseWriter) -> None:
        self.writer = writer
        self.state = _START
        self.done = False  # state is DONE; an attribute, not a property: the server asks after every message

    def answered_by_server(self) -> None:
        """The server wrote the response itself (an error status for a failing application): nothing more may be
        sent."""
        self.state = _DONE
        self.done = True

    @property
    def started(self) -> bool:
        """Have the response headers gone to the client?"""
        return self.writer.head_sent

    @property
    def status(self) -> int:
        return self.writer.status

    def message(self, message: Any) -> bytes:
        kind = message.get("type") if type(message) is dict or isinstance(message, dict) else None
        if type(kind) is not str and not isinstance(kind, str):  # type() first: the usual case, at C speed
            raise ASGIProtocolError(f"ASGI messages are dicts with a 'type' string, got {message!r:.200}")
        state = self.state
        if state is _BODY:  # first: a response's body messages outnumber its start
            if kind != "http.response.body":
                raise ASGIProtocolError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise ASGIProtocolError(f"http.response.body 'body' must be bytes, got {type(body).__name__}")
                body = bytes(body)
            last = not message.get("more_body", False)
            data = self.writer.body(body, last)  # ResponseError (Content-Length disagrees) aborts the connection
            if last:
                self.state = _DONE
                self.done = True
            return data
        if state is _START:
            if kind != "http.response.start":
                raise ASGIProtocolError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999:
                raise ASGIProtocolError(f"http.response.start 'status' must be an int 100..999, got {status!r}")
            if message.get("trailers"):
                raise ASGIProtocolError(
                    "http.response.start 'trailers': this server does not offer the "
                    "http.response.trailers extension (it is not in scope['extensions'])"
                )
            headers = message.get("headers", ())
            try:
                # ASGI HTTP spec, "Response Start": "the protocol server must not start sending the response to the
                # client until it has received at least one Response Body event."  The writer builds the head now
                # and releases it with the first body -- one write for a one-message response.  It also checks
                # the header pairs are bytes; only their shape is ASGI's to check.
                self.writer.start(status, headers if type(headers) is list else check_headers(headers, _START_MESSAGE))
            except (TypeError, ValueError):  # not [name, value] pairs: say so in ASGI's words
                check_headers(headers, _START_MESSAGE)
                raise
            except ResponseError as exc:
                raise ASGIProtocolError(f"http.response.start: {exc}") from None
            self.state = _BODY
            return b""
        raise ASGIProtocolError(f"Unexpected ASGI message {kind!r} sent, after response already completed.")


_START_MESSAGE = "http.response.start"
