"""Recording middleware: what a server and an app say to each other, with timestamps.

Theory of operation
-------------------
A trace is recorded *inside the server process*, by middleware that sits exactly where
the server hands over to the application and changes nothing it passes along:

* :class:`RecordingWSGI` wraps a PEP 3333 callable.  It snapshots the ``environ`` it is
  handed, then records every ``start_response(status, headers)``, every ``write()``
  (the legacy imperative API, PEP 3333 "The write() Callable"), every ``wsgi.input``
  read, each chunk of the returned iterable and its ``close()``.
* :class:`RecordingASGI` wraps an ASGI app.  It snapshots the ``scope``, then records
  each ``receive()`` and ``send()`` message with the time it was awaited and the time it
  returned (a ``send`` that waits is flow control at work).  A ``lifespan`` scope is
  recorded message by message as it happens, because shutdown comes at process exit.

Around each request a :class:`~layercake.trace.profiler.Profiler` builds the call tree.
The first recorder the request meets owns the :class:`Session`; a recorder nested inside
it (the WSGI app behind an a2wsgi bridge, or the ASGI app behind one) joins the same
session, so one record shows both sides of the bridge and the thread hop between them.
The session ends when the outer recorder's request ends: the ASGI app returns, or the
WSGI server calls ``close()`` on the iterable (PEP 3333: the server *must* call it).

Tracing must not change the response, which constrains the wrappers:

* the iterable wrapper keeps ``__len__`` when the app's result has one, because servers
  use it (wsgiref sets ``Content-Length`` when the iterable has exactly one item);
* the ``wsgi.input`` proxy answers ``repr()`` as the real stream does, because
  ``GET /inspect`` puts that repr in the response body;
* snapshots are copies (``json_safe``), taken before the app can mutate the dict --
  Starlette's router, for one, adds keys to the scope it is handed.

What the wrappers hide: a ``wsgi.file_wrapper`` result is wrapped like any iterable, so
a server loses its sendfile fast path (the bytes are the same).  One request at a time:
the recorders keep one active session per process, which is what ``layercake trace``
sends.

The parser's side: :func:`observe_head_reader` wraps our scratch servers' head reader
(the strict checks that run before h11 sees a byte), :func:`observe_response_writer`
their hand-written response serialiser, :func:`observe_h11` wraps ``h11.Connection``'s ``receive_data``,
``next_event`` and ``send`` (class attributes, so every connection of every server that
uses h11 -- ours, uvicorn ``--http h11``, hypercorn -- reports its events), and
:func:`observe_http_server` wraps ``http.server``'s ``parse_request`` (wsgiref and
Werkzeug's server).  Other parsers (gunicorn's, waitress's, granian's hyper)
are opaque from Python.  (httptools is C too, but it calls back into uvicorn.)
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from layercake.trace import profiler as profiling
from layers.shared.introspect import json_safe

Emit = Callable[[dict[str, Any]], None]
PREVIEW = 256  # bytes of each body chunk kept in the record; the full size is always kept


def _now() -> int:
    return time.perf_counter_ns()


def _where() -> dict[str, str | None]:
    """The thread, and the asyncio task if this thread runs a loop, for one event."""
    task = None
    try:
        current = asyncio.current_task()
    except RuntimeError:
        current = None
    if current is not None:
        task = current.get_name()
    return {"thread": threading.current_thread().name, "task": task}


def preview(data: bytes | bytearray | memoryview | None) -> dict[str, Any]:
    """A body chunk as the record keeps it: its size and its first bytes (latin-1)."""
    raw = bytes(data or b"")
    return {"size": len(raw), "preview": raw[:PREVIEW].decode("latin-1"), "truncated": len(raw) > PREVIEW}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """An ASGI message made JSON-safe, its body (or WebSocket bytes) shortened to a preview."""
    out: dict[str, Any] = {}
    for key, value in message.items():
        if key in ("body", "bytes") and isinstance(value, (bytes, bytearray, memoryview)):
            out[key] = preview(value)
        else:
            out[key] = json_safe(value)
    return out


# ---------------------------------------------------------------------------------------
# The session: one request's record in the making
# ---------------------------------------------------------------------------------------


class Session:
    """Everything recorded about one request inside the server process."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(self._ids)
        self.t0_ns = _now()
        self.wall_time = time.time()
        self.pid = os.getpid()
        self.interfaces: list[str] = []
        self.environ: dict[str, Any] | None = None
        self.scope: dict[str, Any] | None = None
        self.conversation: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.profiler = profiling.Profiler(self.t0_ns)
        self.finished = False
        self._lock = threading.Lock()

    # The bookkeeping below is @hidden: the recorder's work is not the request's.

    @profiling.hidden
    def event(self, interface: str, call: str, t_ns: int | None = None, **data: Any) -> dict[str, Any]:
        """Append one conversation event; callable values are evaluated here (so, hidden too)."""
        entry = {"t_ns": (t_ns if t_ns is not None else _now()) - self.t0_ns, "interface": interface,
                 "call": call, **_where(), **{k: v() if callable(v) else v for k, v in data.items()}}
        with self._lock:
            self.conversation.append(entry)
        return entry

    @profiling.hidden
    def done(self, entry: dict[str, Any], **data: Any) -> None:
        """Mark an event's call as returned (``send`` may wait on flow control)."""
        entry["returned_ns"] = _now() - self.t0_ns
        entry.update({k: v() if callable(v) else v for k, v in data.items()})

    @profiling.hidden
    def snapshot(self, view: dict[str, Any]) -> dict[str, Any]:
        return json_safe(view)

    def record(self) -> dict[str, Any]:
        return {
            "session": self.id, "pid": self.pid, "t0_ns": self.t0_ns, "wall_time": self.wall_time,
            "interfaces": self.interfaces, "environ": self.environ, "scope": self.scope,
            "conversation": self.conversation, "errors": self.errors,
            "duration_ns": _now() - self.t0_ns, "profile": self.profiler.summary(),
        }


_active: Session | None = None
_active_lock = threading.Lock()

#: Build call trees?  Off, the conversation's timestamps are the undisturbed ones (the
#: profiler multiplies a request's time several-fold); ``layercake trace --no-profile``.
PROFILE = True


def _begin(interface: str) -> tuple[Session, bool]:
    """The session for a request entering a recorder; True if this recorder owns it."""
    global _active
    with _active_lock:
        if _active is not None and not _active.finished:
            _active.interfaces.append(interface)
            if PROFILE:
                profiling.join_thread()
            return _active, False
        session = _active = Session()
        session.interfaces.append(interface)
    if PROFILE:
        profiling.start(session.profiler)
    return session, True


@profiling.hidden
def _finish(session: Session, emit: Emit | None) -> None:
    global _active
    if PROFILE:
        profiling.stop(session.profiler)
    with _active_lock:
        session.finished = True
        if _active is session:
            _active = None
    if emit is not None:
        emit(session.record())


# ---------------------------------------------------------------------------------------
# WSGI
# ---------------------------------------------------------------------------------------


class _RecordingInput:
    """``wsgi.input`` with every read recorded; ``repr`` is the real stream's (see module doc)."""

    def __init__(self, stream: Any, session: Session) -> None:
        self._stream, self._session = stream, session

    def _log(self, call: str, data: bytes, **args: Any) -> bytes:
        self._session.event("wsgi", f"wsgi.input.{call}", args=args, data=lambda: preview(data))
        return data

    def read(self, *args: Any) -> bytes:
        return self._log("read", self._stream.read(*args), size=args[0] if args else None)

    def readline(self, *args: Any) -> bytes:
        return self._log("readline", self._stream.readline(*args))

    def readlines(self, *args: Any) -> list[bytes]:
        lines = self._stream.readlines(*args)
        self._log("readlines", b"".join(lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            yield self._log("__iter__", line)

    def __getattr__(self, name: str) -> Any:  # anything else a server's stream offers
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return repr(self._stream)


class _RecordingIterable:
    """The app's response iterable, each chunk and the ``close()`` recorded."""

    def __init__(self, result: Iterable[bytes], session: Session, owner: bool, emit: Emit | None) -> None:
        self._result, self._session, self._owner, self._emit = result, session, owner, emit
        self._iterator: Iterator[bytes] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._result)
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._result)
        t = _now()
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._session.event("wsgi", "iterable exhausted", t_ns=t)
            raise
        except BaseException as exc:
            self._session.event("wsgi", "iterable raised", t_ns=t, error=repr(exc))
            raise
        entry = self._session.event("wsgi", "iterable chunk", t_ns=t, data=lambda: preview(chunk))
        self._session.done(entry)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        entry = self._session.event("wsgi", "close()", has_close=hasattr(self._result, "close"))
        try:
            if hasattr(self._result, "close"):
                self._result.close()
        finally:
            self._session.done(entry)
            if self._owner:
                _finish(self._session, self._emit)


class _SizedRecordingIterable(_RecordingIterable):
    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]


class RecordingWSGI:
    """A WSGI app that records the PEP 3333 conversation around ``app``.

    ``emit`` receives each finished request's record (a JSON-safe dict).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], emit: Emit | None = None) -> None:
        self.app, self.emit = app, emit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session, owner = _begin("wsgi")
        session.environ = session.snapshot(environ)
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _RecordingInput(environ["wsgi.input"], session)

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            entry = session.event("wsgi", "start_response", status=status, headers=[list(h) for h in headers],
                                  exc_info=repr(exc_info[1]) if exc_info else None)
            write = start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            session.done(entry)

            def recording_write(data: bytes) -> None:
                w = session.event("wsgi", "write()", data=lambda: preview(data))
                write(data)
                session.done(w)

            return recording_write

        call = session.event("wsgi", "app(environ, start_response)")
        try:
            result = self.app(environ, recording_start_response)
        except BaseException as exc:
            session.event("wsgi", "app raised", error=repr(exc))
            session.errors.append(repr(exc))
            if owner:
                _finish(session, self.emit)
            raise
        session.done(call)
        cls = _SizedRecordingIterable if hasattr(result, "__len__") else _RecordingIterable
        return cls(result, session, owner, self.emit)


# ---------------------------------------------------------------------------------------
# ASGI
# ---------------------------------------------------------------------------------------

LIFESPAN_MODES = ("pass", "unsupported", "fail-startup")


class RecordingASGI:
    """An ASGI app that records the ``receive``/``send`` conversation around ``app``.

    ``emit`` receives each finished request's record; ``emit_lifespan`` each lifespan
    event as it happens.  ``lifespan_mode`` lets the recorder stand in for an app that
    does not support lifespan (it raises on the scope) or whose startup fails (it answers
    ``lifespan.startup.failed``) -- what the ASGI lifespan spec says a server must then do
    is the lesson of ``layercake lifespan --simulate``.
    """

    def __init__(self, app: Any, emit: Emit | None = None, emit_lifespan: Emit | None = None,
                 lifespan_mode: str = "pass") -> None:
        if lifespan_mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan_mode must be one of {LIFESPAN_MODES}, not {lifespan_mode!r}")
        self.app, self.emit, self.emit_lifespan, self.lifespan_mode = app, emit, emit_lifespan, lifespan_mode

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        session, owner = _begin("asgi")
        session.scope = session.snapshot(scope)

        async def recording_receive() -> dict[str, Any]:
            entry = session.event("asgi", "receive()")
            message = await receive()
            session.done(entry, message=lambda: _message(message))
            return message

        async def recording_send(message: dict[str, Any]) -> None:
            entry = session.event("asgi", "send()", message=lambda: _message(message))
            await send(message)
            session.done(entry)

        call = session.event("asgi", "app(scope, receive, send)")
        try:
            await self.app(scope, recording_receive, recording_send)
        except BaseException as exc:
            session.event("asgi", "app raised", error=repr(exc))
            session.errors.append(repr(exc))
            raise
        finally:
            session.done(call)
            if owner:
                _finish(session, self.emit)

    async def _lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        def log(kind: str, **data: Any) -> None:
            if self.emit_lifespan is not None:
                self.emit_lifespan({"kind": kind, "t_ns": _now(), "wall_time": time.time(), "pid": os.getpid(),
                                    **_where(), **data})

        log("app(scope) called", scope=json_safe(scope), mode=self.lifespan_mode)

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            log("receive()", message=json_safe(message))
            return message

        async def recording_send(message: dict[str, Any]) -> None:
            log("send()", message=json_safe(message), state=json_safe(scope.get("state")))
            await send(message)

        app = self.app
        if self.lifespan_mode == "unsupported":
            app = _no_lifespan
        elif self.lifespan_mode == "fail-startup":
            app = _failing_startup
        try:
            await app(scope, recording_receive, recording_send)
        except BaseException as exc:
            log("app raised", error=repr(exc))
            raise
        log("app returned")


async def _no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # What an app that knows only "http" does with any other scope type: raise.
    raise RuntimeError(f"simulated: this app does not support the {scope['type']!r} scope")


async def _failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed",
                    "message": "simulated startup failure (layercake lifespan --simulate fail-startup)"})


# ---------------------------------------------------------------------------------------
# Parser observers
# ---------------------------------------------------------------------------------------

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
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(conn), "role": conn.our_role.__name__,
              "op": op, "our_state": conn.our_state.__name__, "their_state": conn.their_state.__name__,
              **_where(), **fields})

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

    conn_cls.receive_data, conn_cls.next_event, conn_cls.send = receive_data, next_event, send


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
            outcome = {"event": "head complete, strict checks passed", "head": preview(result[0]),
                       "rest": len(result[1])}
        else:
            outcome = {"event": f"rejected: {result.status}", "status": result.status, "reason": result.reason,
                       "rule": result.rule}
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(self), "role": "SERVER", "op": "HeadReader.feed",
              "data": preview(data), **_where(), **outcome})

    HeadReader.feed = feed  # type: ignore[method-assign]


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
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(writer), "role": "SERVER", "op": op, **_where(),
              "framing": getattr(writer, "_framing", None), "keep_alive": getattr(writer, "keep_alive", None),
              **{k: v() if callable(v) else v for k, v in fields.items()}})

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

    ResponseWriter.start, ResponseWriter.body, ResponseWriter.end = start, body, end  # type: ignore[method-assign]


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
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(conn), "role": "CLIENT" if getattr(conn, "client", False) else "SERVER",
              "op": op, "our_state": conn.state.name, **_where(), **fields})

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

    Connection.receive_data, Connection.events, Connection.send = receive_data, events, send


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
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(protocol), "role": "SERVER", "op": op, **_where(),
              **{k: v() if callable(v) else v for k, v in fields.items()}})

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
        return {"method": scope.get("method"), "target": (protocol.url or b"").decode("latin-1"),
                "http_version": scope.get("http_version"), "headers": lambda: [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope.get("headers", [])]}

    wrap("data_received", lambda self, data: {"data": lambda: preview(data)}, before=True)
    wrap("on_message_begin", lambda self: {})
    wrap("on_url", lambda self, url: {"url": url.decode("latin-1")})
    wrap("on_header", lambda self, name, value: {"header": f"{name.decode('latin-1')}: {value.decode('latin-1')}"})
    wrap("on_headers_complete", request_of)
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
        emit({"t_ns": _now(), "pid": os.getpid(), "conn": id(self.connection), "role": "SERVER",
              "op": "parse_request", "event": "parse_request", "ok": ok, **_where(),
              "requestline": getattr(self, "requestline", ""), "method": getattr(self, "command", None),
              "target": getattr(self, "path", None), "http_version": getattr(self, "request_version", None),
              "headers": [[k, v] for k, v in headers.items()] if headers is not None else [],
              "close_connection": getattr(self, "close_connection", None)})

    BaseHTTPRequestHandler.parse_request = parse_request  # type: ignore[method-assign]
