"""Drive a WSGI or ASGI application with no socket at all.

Theory of operation
-------------------
A server's job, seen from the application, is small: build an ``environ`` (PEP 3333)
or a ``scope`` (ASGI), then carry the body in and the response out.  These drivers do
exactly that and nothing else, so the contract can be checked, and a layer's own cost
measured, without any server in the way.

* :class:`WSGIDriver` builds the environ with the very function our servers use
  (``servers/core/wsgi.py``'s ``build_environ``, from a ``RequestHead`` shaped like the
  one the parser produces) and, by default, wraps the app in
  :func:`wsgiref.validate.validator`, which asserts PEP 3333's rules on both sides --
  ours and the app's.  The body is a lazy stream: a declared 16 MiB upload is never
  built in memory, and the driver counts how much of it the app read, so "refused
  before reading" can be checked.
* :class:`ASGIDriver` runs its own event loop on a background thread so that callers
  (the contract runner, the tour) can stay synchronous.  Its scopes come from the
  servers' ``http_scope``/``websocket_scope`` (``servers/core/asgi.py``), and it runs
  lifespan with the servers' ``LifespanRunner`` (``servers/lifespan.py``: ``lifespan.startup``
  before any request, ``lifespan.shutdown`` at the end, one ``state`` dict copied into
  every request's scope), drives HTTP
  requests with ``http.request``/``http.disconnect`` and checks the order of the
  app's ``send`` messages, and holds WebSocket sessions.

So "in-process" means *our server core without a socket*: an application sees the same
environ or scope here as on scratch-wsgi or scratch-asgi for the same request (a test
diffs them).  What they deliberately don't do: HTTP framing, keep-alive, timeouts,
concurrency.  That is the servers' work (``servers/``); these drivers are the control group.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from servers.core.asgi import http_scope, websocket_scope
from servers.core.events import RequestHead
from servers.core.wsgi import build_environ
from servers.lifespan import LifespanRunner

Headers = list[tuple[str, str]]

#: The addresses a driver's request claims, as a server on a loopback port would report them.
SERVER = ("127.0.0.1", 80)
CLIENT = ("127.0.0.1", 50000)


@dataclass
class Response:
    """What came back: status, headers in order, and the body as the chunks it came in."""

    status: int
    headers: Headers
    chunks: list[bytes] = field(default_factory=list)
    body_bytes_read: int | None = None  # how much of the request body the app consumed, when known
    complete: bool = True  # False: the response was aborted part-way (no proper end)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class BodyStream(io.RawIOBase):
    """A request body produced on demand, counting what the app reads.

    ``parts`` is any iterable of bytes; a declared 16 MiB body can be an iterator that
    yields zeros lazily, so nothing large is built unless the app really reads it.
    """

    def __init__(self, parts: Iterable[bytes], limit: int | None = None) -> None:
        self._parts: Iterator[bytes] = iter(parts)
        self._buffer = b""
        self.bytes_read = 0
        # Like a server's wsgi.input (and what ``wsgi.input_terminated`` promises): EOF exactly at the end of a
        # Content-Length body, whatever the caller's parts hold after it.
        self._left = limit

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while want < 0 or len(self._buffer) < want:
            part = next(self._parts, None) if self._left != 0 else None
            if part is None:
                return
            if self._left is not None:
                part, self._left = part[: self._left], self._left - min(len(part), self._left)
            self._buffer += part

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        self._fill(size)
        data = self._buffer if size < 0 else self._buffer[:size]
        self._buffer = self._buffer[len(data) :]
        self.bytes_read += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        while b"\n" not in self._buffer and (size < 0 or len(self._buffer) < size):
            before = len(self._buffer)
            self._fill(len(self._buffer) + 65536)
            if len(self._buffer) == before:
                break
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size >= 0:
            end = min(end, size)
        data, self._buffer = self._buffer[:end], self._buffer[end:]
        self.bytes_read += len(data)
        return data

    def next_part(self, size: int = 65536) -> tuple[bytes, bool]:
        """The next piece of at most ``size`` bytes, and whether more follows: one
        ASGI ``http.request`` message (``body``, ``more_body``)."""
        data = self.read(size)
        self._fill(1)
        return data, bool(self._buffer)


def zeros(total: int, piece: int = 65536) -> Iterator[bytes]:
    """``total`` zero bytes, produced lazily in pieces."""
    while total > 0:
        n = min(piece, total)
        total -= n
        yield b"\0" * n


#: An opening handshake's fields (RFC 6455 §4.1), with §1.3's example key.
WEBSOCKET_HANDSHAKE: Headers = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
]


def request_head(method: str, target: str, headers: Headers = ()) -> RequestHead:  # type: ignore[assignment]  # an immutable empty default for a list-typed parameter; never mutated
    """The head a parser would produce for this request: names lowercased, a ``Host`` added if the caller sent none
    (every HTTP/1.1 request has one, RFC 9112 §3.2), everything as latin-1 bytes."""
    fields = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    if not any(name == b"host" for name, _ in fields):
        fields.insert(0, (b"host", SERVER[0].encode()))
    return RequestHead(method.encode("ascii"), target.encode("latin-1"), b"1.1", fields)


# --------------------------------------------------------------------------- WSGI


def validator(app: Callable[..., Any]) -> Callable[..., Any]:
    """``wsgiref.validate.validator``, told about ``wsgi.input_terminated``.

    PEP 3333 spells the input's method ``read(size)``, and wsgiref's checker insists on the
    argument.  But our servers set ``wsgi.input_terminated`` (as gunicorn and mod_wsgi do):
    the input ends exactly where the request body ends, so an application may read it to
    the end with ``read()`` -- Werkzeug's form parser does.  The drivers build the servers'
    environ, so the checker must accept what the servers promise: a ``read()`` with no size
    when the flag is set, every other check unchanged.  The checker looks its input wrapper
    up by name when a request starts, so the wrapper is swapped for that moment, under a lock.
    """
    from wsgiref import validate

    class TerminatedInput(validate.InputWrapper):
        def read(self, *args: int) -> bytes:
            if args:
                return super().read(*args)
            data = self.input.read()
            if type(data) is not bytes:  # the check wsgiref makes of every read
                raise AssertionError(f"wsgi.input.read() must return bytes, got {type(data).__name__}")
            return data

    lint = validate.validator(app)

    def checked(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("wsgi.input_terminated"):
            return lint(environ, start_response)
        with _VALIDATE_LOCK:
            original, validate.InputWrapper = validate.InputWrapper, TerminatedInput  # type: ignore[misc]  # swapped back below
            try:
                return lint(environ, start_response)  # wraps wsgi.input first thing, before the app runs
            finally:
                validate.InputWrapper = original  # type: ignore[misc]  # restored

    return checked


_VALIDATE_LOCK = threading.Lock()


class WSGIDriver:
    """Call a WSGI application the way a server would, one request at a time."""

    interface = "wsgi"

    def __init__(self, app: Callable[..., Any], *, validate: bool = True) -> None:
        if validate:
            app = validator(app)
        self.app = app

    def environ(
        self,
        method: str,
        target: str,
        headers: Headers = (),  # type: ignore[assignment]  # an immutable empty default for a list-typed parameter; never mutated
        body: BodyStream | None = None,
        content_length: int | None = None,
    ) -> dict[str, Any]:
        """The environ for one request: the servers' ``build_environ`` (PEP 3333, "environ Variables")."""
        fields = list(headers)
        if content_length is not None:
            fields.append(("content-length", str(content_length)))
        return build_environ(
            request_head(method, target, fields), server=SERVER, client=CLIENT, wsgi_input=body or BodyStream(())
        )

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),  # type: ignore[assignment]  # an immutable empty default for a list-typed parameter; never mutated
        body: bytes | Iterable[bytes] = b"",
        content_length: int | None = None,
        chunked: bool = False,
    ) -> Response:
        """Run one request.  ``body`` bytes get a Content-Length unless ``chunked``;
        an iterable body needs ``content_length`` or ``chunked=True``."""
        if isinstance(body, (bytes, bytearray)):
            if content_length is None and not chunked:
                content_length = len(body) if (body or method in ("POST", "PUT", "PATCH")) else None
            parts: Iterable[bytes] = [bytes(body)] if body else []
        else:
            parts = body
        if content_length is None and not chunked:
            parts = []  # RFC 9112 §6.3: no Content-Length and no chunked coding is a request without a body
        stream = BodyStream(parts, content_length)
        if chunked and content_length is None:
            headers = [*headers, ("transfer-encoding", "chunked")]
        environ = self.environ(method, target, headers, stream, content_length)
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: Headers, exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and captured.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            captured["status"], captured["headers"] = status, response_headers
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.app(environ, start_response)
        chunks: list[bytes] = []
        complete = True
        try:
            for chunk in result:
                captured["sent"] = True
                if chunk:
                    chunks.append(chunk)
        except Exception:
            # The app failed after starting its response: a server would drop the
            # connection (no terminating chunk); report it as an incomplete response.
            complete = False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        chunks = captured.get("written", []) + chunks
        status = int(captured["status"].split(" ", 1)[0])
        return Response(status, list(captured["headers"]), chunks, stream.bytes_read, complete)

    def websocket(self, path: str) -> Response:
        """WSGI cannot hold a WebSocket: send the upgrade request and return the plain answer."""
        return self.request("GET", path, headers=WEBSOCKET_HANDSHAKE)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- ASGI


class ASGIProtocolError(AssertionError):
    """The app broke the ASGI message order (e.g. a body before ``http.response.start``)."""


class ASGIDriver:
    """Call an ASGI application the way a server would, from synchronous code.

    The app runs on an event loop owned by a background thread; every public method
    hands a coroutine to that loop and waits for its result.
    """

    interface = "asgi"

    def __init__(self, app: Callable[..., Awaitable[None]], *, lifespan: bool = True, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.lifespan = LifespanRunner(app)
        self.lifespan_supported: bool | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asgi-driver", daemon=True)
        self._thread.start()
        if lifespan:
            self._call(self._startup())

    @property
    def state(self) -> dict[str, Any]:
        return self.lifespan.state

    @property
    def lifespan_messages(self) -> list[dict[str, Any]]:
        return self.lifespan.messages

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)  # type: ignore[arg-type]  # callers pass coroutines, which run_coroutine_threadsafe requires

    # -- lifespan (ASGI lifespan spec), as the servers run it ---------------------

    async def _startup(self) -> None:
        outcome = await self.lifespan.startup(self.timeout)
        if outcome.failed is not None:
            raise RuntimeError(f"lifespan startup failed: {outcome.failed}")
        self.lifespan_supported = outcome.supported

    async def _shutdown(self) -> None:
        if self.lifespan_supported:
            await self.lifespan.shutdown(self.timeout)

    # -- HTTP (ASGI HTTP connection scope) ---------------------------------------

    def scope(self, method: str, target: str, headers: Headers = ()) -> dict[str, Any]:  # type: ignore[assignment]  # an immutable empty default for a list-typed parameter; never mutated
        """The servers' ``http_scope`` for this request, with a copy of the lifespan state."""
        state = self.state if self.lifespan_supported else None
        return http_scope(request_head(method, target, headers), server=SERVER, client=CLIENT, state=state)

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),  # type: ignore[assignment]  # an immutable empty default for a list-typed parameter; never mutated
        body: bytes | Iterable[bytes] = b"",
        content_length: int | None = None,
        chunked: bool = False,
    ) -> Response:
        headers = list(headers)
        if isinstance(body, (bytes, bytearray)):
            if content_length is None and not chunked and (body or method in ("POST", "PUT", "PATCH")):
                content_length = len(body)
            parts: Iterable[bytes] = [bytes(body)] if body else []
        else:
            parts = body
        if content_length is not None:
            headers.append(("content-length", str(content_length)))
        elif chunked:
            headers.append(("transfer-encoding", "chunked"))
        return self._call(self._http(self.scope(method, target, headers), BodyStream(parts)))

    async def _http(self, scope: dict[str, Any], stream: BodyStream) -> Response:
        done = asyncio.Event()
        body_done = False
        response: dict[str, Any] = {"status": None, "headers": [], "chunks": [], "finished": False}

        async def receive() -> dict[str, Any]:
            nonlocal body_done
            if not body_done:
                part, more = stream.next_part()
                body_done = not more
                return {"type": "http.request", "body": part, "more_body": more}
            # ASGI HTTP spec: after the body, receive() waits until the client goes away.
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if response["status"] is not None:
                    raise ASGIProtocolError("http.response.start sent twice")
                response["status"] = message["status"]
                response["headers"] = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
                ]
            elif kind == "http.response.body":
                if response["status"] is None:
                    raise ASGIProtocolError("http.response.body sent before http.response.start")
                if response["finished"]:
                    raise ASGIProtocolError("http.response.body sent after the final body message")
                if message.get("body"):
                    response["chunks"].append(bytes(message["body"]))
                if not message.get("more_body", False):
                    response["finished"] = True
                    done.set()
            else:
                raise ASGIProtocolError(f"unexpected message type {kind!r} in an HTTP connection")

        complete = True
        try:
            await self.app(scope, receive, send)
        except ASGIProtocolError:
            raise
        except Exception:
            complete = False
            if response["status"] is None:
                # Nothing sent yet: a server answers 500 itself (as uvicorn does).
                response["status"], response["headers"] = 500, [("content-type", "text/plain")]
                response["chunks"] = [b"Internal Server Error"]
                complete = True
        finally:
            done.set()
        if response["status"] is None:
            raise ASGIProtocolError("the app returned without sending http.response.start")
        complete = complete and response["finished"]
        return Response(response["status"], response["headers"], response["chunks"], stream.bytes_read, complete)

    # -- WebSocket (ASGI WebSocket connection scope) ------------------------------

    def websocket(self, path: str) -> WebSocketSession | Response:
        """Open a WebSocket; an app that rejects it (or has no such route) yields a Response."""
        return self._call(self._ws_open(path))

    async def _ws_open(self, path: str) -> WebSocketSession | Response:
        head = request_head("GET", path, WEBSOCKET_HANDSHAKE)
        state = self.state if self.lifespan_supported else None
        scope = websocket_scope(head, server=SERVER, client=CLIENT, state=state)
        session = WebSocketSession(self)
        session.task = asyncio.ensure_future(self.app(scope, session._from_client.get, session._on_send))
        await session._from_client.put({"type": "websocket.connect"})
        first = await asyncio.wait_for(session._to_client.get(), self.timeout)
        if first["type"] == "websocket.accept":
            return session
        if first["type"] == "websocket.http.response.start":
            chunks = []
            while True:
                msg = await asyncio.wait_for(session._to_client.get(), self.timeout)
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    break
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in first.get("headers", [])]
            return Response(first["status"], headers, chunks)
        # websocket.close before accept: the server answers 403 (ASGI WebSocket spec).
        return Response(403, [], [])

    def close(self) -> None:
        """Run lifespan shutdown and stop the loop."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()


class WebSocketSession:
    """One in-process WebSocket: the client's side of the ASGI conversation."""

    def __init__(self, driver: ASGIDriver) -> None:
        self.driver = driver
        self._from_client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._to_client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Future[None] | None = None
        self.close_code: int | None = None

    async def _on_send(self, message: dict[str, Any]) -> None:
        await self._to_client.put(message)

    def send(self, data: str | bytes) -> None:
        msg = (
            {"type": "websocket.receive", "text": data}
            if isinstance(data, str)
            else {"type": "websocket.receive", "bytes": data}
        )
        self.driver._call(self._from_client.put(msg))

    def receive(self) -> str | bytes:
        """The next message the app sent; a close from the app raises ConnectionError."""
        msg = self.driver._call(asyncio.wait_for(self._to_client.get(), self.driver.timeout))
        if msg["type"] == "websocket.close":
            self.close_code = msg.get("code", 1000)
            raise ConnectionError(f"closed by the app with code {self.close_code}")
        return msg["text"] if msg.get("text") is not None else msg["bytes"]

    def close(self, code: int = 1000) -> bool:
        """Client closes; returns True when the app finished cleanly afterwards."""

        async def _close() -> bool:
            await self._from_client.put({"type": "websocket.disconnect", "code": code})
            assert self.task is not None
            await asyncio.wait_for(self.task, self.driver.timeout)
            return True

        return self.driver._call(_close())


def driver_for(app: Any, interface: str, **kwargs: Any) -> WSGIDriver | ASGIDriver:
    """The in-process driver for an app of the given interface."""
    return WSGIDriver(app, **kwargs) if interface == "wsgi" else ASGIDriver(app, **kwargs)
