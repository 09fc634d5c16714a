"""Parser observers: the server's side of a request, before the app is called and after.

Theory of operation
-------------------
The recorders (:mod:`layercake.trace.recorder`) see only the interface.  What a server's
parser made of the bytes -- and how its writer framed the answer -- happens inside the
server, so each observer wraps the methods of a parser's *class*, once, inside the
traced server process (``instrumented.py`` installs them before any connection exists), and
reports every call to ``emit`` as one JSON-safe dict: ``t_ns`` (``perf_counter``, the
recorders' clock), ``pid``, ``conn`` (the id of the parser object) and ``op``.

================================  ===========================================================
observer                          shows
================================  ===========================================================
:func:`observe_head_reader`       our servers find the end of the head and run ``strict.py``
                                  before h11 sees a byte (``servers/core/head.py``)
:func:`observe_h11`               h11's ``receive_data`` / ``next_event`` / ``send``: our
                                  servers, uvicorn ``--http h11``, hypercorn
:func:`observe_response_writer`   our servers' hand-written response framing (``writer.py``)
:func:`observe_uvicorn_httptools` httptools is C (llhttp), but calls back into uvicorn's
                                  protocol: ``on_url``, ``on_header`` (names as sent), ...
:func:`observe_scratch_httptools` the same callbacks into our servers' ``HttptoolsParser``
                                  (``--http httptools``, ``servers/core/parsers.py``)
:func:`observe_wsproto`           WebSocket frames after an upgrade (ours, hypercorn)
:func:`observe_http_server`       ``http.server``'s ``parse_request``: wsgiref, Werkzeug's
================================  ===========================================================

Opaque from Python, and said so in the trace: gunicorn's parser, waitress's, granian's
(hyper, in Rust), the ``websockets`` library's, and h11-mypyc (our ``--http h11-mypyc``:
its classes are compiled, and a compiled class cannot be wrapped).

Wrapping a class is a compromise, taken because it needs nothing from the servers:
no hook to maintain, and the same observer serves every server that uses the parser.
The wrappers call the original first (or, for bytes arriving, report first) and change
no argument or result; their reporting is ``@hidden`` from the call tree.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from layercake.trace import profiler as profiling
from layercake.trace.recorder import Emit, now_ns, preview, where
from layers.shared.introspect import json_safe

_observed: set[str] = set()


def _h11_event(event: Any) -> dict[str, Any]:
    if isinstance(event, type):  # h11's sentinels NEED_DATA and PAUSED are classes
        return {"event": event.__name__}
    out: dict[str, Any] = {"event": type(event).__name__}
    for name in ("method", "target", "http_version", "status_code", "reason", "code"):
        if hasattr(event, name):
            out[name] = json_safe(getattr(event, name))
    if hasattr(event, "headers"):
        headers = event.headers
        items = headers.raw_items() if hasattr(headers, "raw_items") else headers
        out["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in items]
    if hasattr(event, "data"):
        out["data"] = preview(event.data)
    return out


def observe_h11(emit: Emit) -> None:
    """Report every h11 connection's bytes in, events out and events sent, to ``emit``."""
    if "h11" in _observed:
        return
    _observed.add("h11")
    import h11

    conn_cls = h11.Connection
    original_receive, original_next, original_send = conn_cls.receive_data, conn_cls.next_event, conn_cls.send

    @profiling.hidden  # the observer's bookkeeping is not the request's work
    def report(conn: Any, op: str, event: Any = None, data: bytes | None = None) -> None:
        fields: dict[str, Any] = {}
        if op == "receive_data":
            fields = {"data": preview(data), "eof": not data}
        else:
            fields = _h11_event(event)
            if op == "send" and data is not None:
                fields["produced"] = preview(data)
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(conn),
                "role": conn.our_role.__name__,
                "op": op,
                "our_state": conn.our_state.__name__,
                "their_state": conn.their_state.__name__,
                **where(),
                **fields,
            }
        )

    @functools.wraps(original_receive)
    def receive_data(self: Any, data: bytes) -> None:
        original_receive(self, data)
        report(self, "receive_data", data=data)

    @functools.wraps(original_next)
    def next_event(self: Any) -> Any:
        event = original_next(self)
        report(self, "next_event", event)
        return event

    @functools.wraps(original_send)
    def send(self: Any, event: Any) -> Any:
        data = original_send(self, event)
        report(self, "send", event, data)
        return data

    # Replacing the class's methods is the point: every connection the server makes is observed.
    conn_cls.receive_data, conn_cls.next_event, conn_cls.send = receive_data, next_event, send  # type: ignore[method-assign]  # replaced on purpose: every instance the server makes is observed


def observe_head_reader(emit: Emit) -> None:
    """Report our scratch servers' head reader: bytes in, then "need more", a rejection, or a complete head.

    Our servers find the end of the head and run ``servers/core/strict.py`` on it *before*
    h11 sees a byte (``servers/core/head.py``); wrapping ``HeadReader.feed`` shows that step.
    """
    if "head" in _observed:
        return
    _observed.add("head")
    try:
        from servers.core.head import HeadReader
    except ImportError:  # not our server's process, or the module moved: nothing to observe
        return
    original = HeadReader.feed

    @functools.wraps(original)
    def feed(self: Any, data: bytes) -> Any:
        result = original(self, data)
        report(self, data, result)
        return result

    @profiling.hidden
    def report(self: Any, data: bytes, result: Any) -> None:
        if result is None:
            outcome: dict[str, Any] = {"event": "need more bytes"}
        elif isinstance(result, tuple):
            outcome = {
                "event": "head complete, strict checks passed",
                "head": preview(result[0]),
                "rest": len(result[1]),
            }
        else:
            outcome = {
                "event": f"rejected: {result.status}",
                "status": result.status,
                "reason": result.reason,
                "rule": result.rule,
            }
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(self),
                "role": "SERVER",
                "op": "HeadReader.feed",
                "data": preview(data),
                **where(),
                **outcome,
            }
        )

    HeadReader.feed = feed  # type: ignore[method-assign]  # replaced on purpose: every head the server reads is observed


def observe_response_writer(emit: Emit) -> None:
    """Report our scratch servers' response writer: the head decided, each body chunk framed, the end.

    Our servers parse with h11 but write responses by hand (``servers/core/writer.py``
    says why); wrapping ``ResponseWriter`` shows the framing chosen and the bytes produced.
    """
    if "writer" in _observed:
        return
    _observed.add("writer")
    try:
        from servers.core.writer import ResponseWriter
    except ImportError:  # an older server, or not ours: h11's send is observed instead
        return
    original_start, original_body, original_end = ResponseWriter.start, ResponseWriter.body, ResponseWriter.end

    @profiling.hidden
    def report(writer: Any, op: str, **fields: Any) -> None:
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(writer),
                "role": "SERVER",
                "op": op,
                **where(),
                "framing": getattr(writer, "_framing", None),
                "keep_alive": getattr(writer, "keep_alive", None),
                **{k: v() if callable(v) else v for k, v in fields.items()},
            }
        )

    @functools.wraps(original_start)
    def start(self: Any, status: int, headers: list[tuple[bytes, bytes]], reason: bytes | None = None) -> None:
        original_start(self, status, headers, reason)
        report(self, "ResponseWriter.start", status=status, head=lambda: preview(self._head))

    @functools.wraps(original_body)
    def body(self: Any, data: bytes, last: bool = False) -> bytes:
        out = original_body(self, data, last)
        report(self, "ResponseWriter.body", data=lambda: preview(data), last=last, produced=lambda: preview(out))
        return out

    @functools.wraps(original_end)
    def end(self: Any) -> bytes:
        out = original_end(self)
        report(self, "ResponseWriter.end", produced=lambda: preview(out))
        return out

    ResponseWriter.start, ResponseWriter.body, ResponseWriter.end = start, body, end  # type: ignore[method-assign]  # replaced on purpose: every response the server writes is observed


def _ws_event(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event": type(event).__name__}
    for name in ("code", "reason", "message_finished", "frame_finished"):
        if hasattr(event, name):
            out[name] = json_safe(getattr(event, name))
    data = getattr(event, "data", None)
    if isinstance(data, str):
        out["data"] = preview(data.encode())
    elif isinstance(data, (bytes, bytearray)):
        out["data"] = preview(data)
    return out


def observe_wsproto(emit: Emit) -> None:
    """Report every wsproto ``Connection``'s frames in and out (after a WebSocket upgrade).

    The low-level ``wsproto.connection.Connection`` is what our scratch server uses directly
    and what wsproto's ``WSConnection`` (uvicorn ``--ws wsproto``, hypercorn) uses inside.
    """
    if "wsproto" in _observed:
        return
    _observed.add("wsproto")
    try:
        from wsproto.connection import Connection
    except ImportError:
        return
    original_receive, original_events, original_send = Connection.receive_data, Connection.events, Connection.send

    @profiling.hidden
    def report(conn: Any, op: str, event: Any = None, data: bytes | None = None) -> None:
        fields = {"data": preview(data)} if op == "ws.receive_data" else _ws_event(event)
        if op == "ws.send" and data is not None:
            fields["produced"] = preview(data)
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(conn),
                "role": "CLIENT" if getattr(conn, "client", False) else "SERVER",
                "op": op,
                "our_state": conn.state.name,
                **where(),
                **fields,
            }
        )

    @functools.wraps(original_receive)
    def receive_data(self: Any, data: bytes | None) -> None:
        original_receive(self, data)
        report(self, "ws.receive_data", data=data)

    @functools.wraps(original_events)
    def events(self: Any) -> Iterator[Any]:
        for event in original_events(self):
            report(self, "ws.events", event)
            yield event

    @functools.wraps(original_send)
    def send(self: Any, event: Any) -> bytes:
        data = original_send(self, event)
        report(self, "ws.send", event, data)
        return data

    Connection.receive_data, Connection.events, Connection.send = receive_data, events, send  # type: ignore[method-assign, assignment]  # observed, as above


def observe_uvicorn_httptools(emit: Emit) -> None:
    """Report the callbacks httptools (llhttp, in C) makes into uvicorn's protocol object.

    The parser itself is C and opaque, but it is driven through Python callbacks --
    ``on_message_begin``, ``on_url``, ``on_header``, ``on_headers_complete``, ``on_body``,
    ``on_message_complete`` -- which httptools looks up on the protocol when it creates
    the parser, so wrapping them on the class (before any connection) shows the parse.
    Only in a uvicorn process: importing the protocol module here is what uvicorn does
    itself a moment later (the same module object, so the same patched class); a process
    running ``--http h11`` just never uses it.
    """
    if "uvicorn" not in sys.modules or "httptools" in _observed:
        return
    _observed.add("httptools")
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as cls
    except ImportError:  # httptools not installed: uvicorn uses h11, observed already
        return

    @profiling.hidden
    def report(protocol: Any, op: str, **fields: Any) -> None:
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(protocol),
                "role": "SERVER",
                "op": op,
                **where(),
                **{k: v() if callable(v) else v for k, v in fields.items()},
            }
        )

    def wrap(name: str, fields: Callable[..., dict[str, Any]], before: bool = False) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def callback(self: Any, *args: Any) -> Any:
            if before:  # bytes in: reported before the parser's callbacks they cause
                report(self, f"httptools.{name}", event=name, **fields(self, *args))
                return original(self, *args)
            result = original(self, *args)
            report(self, f"httptools.{name}", event=name, **fields(self, *args))
            return result

        setattr(cls, name, callback)

    def request_of(protocol: Any) -> dict[str, Any]:
        scope = getattr(protocol, "scope", None) or {}
        return {
            "method": scope.get("method"),
            "target": (protocol.url or b"").decode("latin-1"),
            "http_version": scope.get("http_version"),
            "headers": lambda: [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope.get("headers", [])],
        }

    wrap("data_received", lambda self, data: {"data": lambda: preview(data)}, before=True)
    wrap("on_message_begin", lambda self: {})
    wrap("on_url", lambda self, url: {"url": url.decode("latin-1")})
    wrap("on_header", lambda self, name, value: {"header": f"{name.decode('latin-1')}: {value.decode('latin-1')}"})
    wrap("on_headers_complete", request_of)
    wrap("on_body", lambda self, body: {"data": lambda: preview(body)})
    wrap("on_message_complete", lambda self: {})


def observe_scratch_httptools(emit: Emit) -> None:
    """Report llhttp's callbacks into our servers' ``HttptoolsParser``, as :func:`observe_uvicorn_httptools` does
    for uvicorn's protocol: the same op names (``httptools.on_url``, ...), so a trace reads the same on both.

    httptools looks the callbacks up on the parser object when it creates its llhttp (one per connection), so
    wrapping them on the class before any connection shows every parse.  ``httptools.receive_data`` is the bytes
    the connection handed over, reported before the callbacks they cause.
    """
    if "scratch-httptools" in _observed:
        return
    _observed.add("scratch-httptools")
    try:
        from servers.core.parsers import HttptoolsParser as cls
    except ImportError:  # not our server's process, or the module moved
        return

    @profiling.hidden
    def report(parser: Any, op: str, **fields: Any) -> None:
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(parser),
                "role": "SERVER",
                "op": f"httptools.{op}",
                "event": op,
                **where(),
                **{k: v() if callable(v) else v for k, v in fields.items()},
            }
        )

    def head_of(parser: Any) -> dict[str, Any]:
        head = parser._events[-1]  # on_headers_complete has just queued the RequestHead
        return {
            "method": head.method.decode("latin-1"),
            "target": head.target.decode("latin-1"),
            "http_version": head.http_version.decode("latin-1"),
            "headers": lambda: [[k.decode("latin-1"), v.decode("latin-1")] for k, v in head.headers],
        }

    def wrap(name: str, fields: Callable[..., dict[str, Any]], before: bool = False) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def method(self: Any, *args: Any) -> Any:
            if before:
                report(self, name, **fields(self, *args))
                return original(self, *args)
            result = original(self, *args)
            report(self, name, **fields(self, *args))
            return result

        setattr(cls, name, method)

    wrap("receive_data", lambda self, data: {"data": lambda: preview(data)}, before=True)
    wrap("on_message_begin", lambda self: {})
    wrap("on_url", lambda self, url: {"url": url.decode("latin-1")})
    wrap("on_header", lambda self, name, value: {"header": f"{name.decode('latin-1')}: {value.decode('latin-1')}"})
    wrap("on_headers_complete", head_of)
    wrap("on_body", lambda self, body: {"data": lambda: preview(body)})
    wrap("on_message_complete", lambda self: {})


def observe_http_server(emit: Emit) -> None:
    """Report what ``http.server`` parsed of each request head (wsgiref, Werkzeug's server)."""
    if "http.server" in _observed:
        return
    _observed.add("http.server")
    from http.server import BaseHTTPRequestHandler

    original = BaseHTTPRequestHandler.parse_request

    @functools.wraps(original)
    def parse_request(self: Any) -> bool:
        ok = original(self)
        report(self, ok)
        return ok

    @profiling.hidden
    def report(self: Any, ok: bool) -> None:
        headers = getattr(self, "headers", None)
        emit(
            {
                "t_ns": now_ns(),
                "pid": os.getpid(),
                "conn": id(self.connection),
                "role": "SERVER",
                "op": "parse_request",
                "event": "parse_request",
                "ok": ok,
                **where(),
                "requestline": getattr(self, "requestline", ""),
                "method": getattr(self, "command", None),
                "target": getattr(self, "path", None),
                "http_version": getattr(self, "request_version", None),
                "headers": [[k, v] for k, v in headers.items()] if headers is not None else [],
                "close_connection": getattr(self, "close_connection", None),
            }
        )

    BaseHTTPRequestHandler.parse_request = parse_request  # type: ignore[method-assign]  # replaced on purpose: http.server's parser is observed
