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

The parser's side -- what happens before the app is called and after it answers -- is
observed by :mod:`layercake.trace.observers`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from layercake.trace import profiler as profiling
from layers.shared.introspect import json_safe

Emit = Callable[[dict[str, Any]], None]
PREVIEW = 256  # bytes of each body chunk kept in the record; the full size is always kept


def now_ns() -> int:
    """The clock of every record: perf_counter (CLOCK_MONOTONIC on Linux, shared by processes)."""
    return time.perf_counter_ns()


def where() -> dict[str, str | None]:
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
        self.t0_ns = now_ns()
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
        entry = {
            "t_ns": (t_ns if t_ns is not None else now_ns()) - self.t0_ns,
            "interface": interface,
            "call": call,
            **where(),
            **{k: v() if callable(v) else v for k, v in data.items()},
        }
        with self._lock:
            self.conversation.append(entry)
        return entry

    @profiling.hidden
    def done(self, entry: dict[str, Any], **data: Any) -> None:
        """Mark an event's call as returned (``send`` may wait on flow control)."""
        entry["returned_ns"] = now_ns() - self.t0_ns
        entry.update({k: v() if callable(v) else v for k, v in data.items()})

    @profiling.hidden
    def snapshot(self, view: dict[str, Any]) -> dict[str, Any]:
        return json_safe(view)

    def record(self) -> dict[str, Any]:
        return {
            "session": self.id,
            "pid": self.pid,
            "t0_ns": self.t0_ns,
            "wall_time": self.wall_time,
            "interfaces": self.interfaces,
            "environ": self.environ,
            "scope": self.scope,
            "conversation": self.conversation,
            "errors": self.errors,
            "duration_ns": now_ns() - self.t0_ns,
            "profile": self.profiler.summary(),
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
        t = now_ns()
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
        return len(self._result)  # type: ignore[arg-type]  # only made for results that have a length (see the factory above)


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
            entry = session.event(
                "wsgi",
                "start_response",
                status=status,
                headers=[list(h) for h in headers],
                exc_info=repr(exc_info[1]) if exc_info else None,
            )
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

    def __init__(
        self, app: Any, emit: Emit | None = None, emit_lifespan: Emit | None = None, lifespan_mode: str = "pass"
    ) -> None:
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
                self.emit_lifespan(
                    {"kind": kind, "t_ns": now_ns(), "wall_time": time.time(), "pid": os.getpid(), **where(), **data}
                )

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
        await send(
            {
                "type": "lifespan.startup.failed",
                "message": "simulated startup failure (layercake lifespan --simulate fail-startup)",
            }
        )
