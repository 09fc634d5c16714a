"""Drive a WSGI or ASGI application with no socket at all.

Theory of operation
-------------------
A server's job, seen from the application, is small: build an ``environ`` (PEP 3333)
or a ``scope`` (ASGI), then carry the body in and the response out.  These drivers do
exactly that and nothing else, so the contract can be checked, and a layer's own cost
measured, without any server in the way.

* :class:`WSGIDriver` builds the environ by hand and, by default, wraps the app in
  :func:`wsgiref.validate.validator`, which asserts PEP 3333's rules on both sides --
  ours and the app's.  The body is a lazy stream: a declared 16 MiB upload is never
  built in memory, and the driver counts how much of it the app read, so "refused
  before reading" can be checked.
* :class:`ASGIDriver` runs its own event loop on a background thread so that callers
  (the contract runner, the tour) can stay synchronous.  It runs the lifespan protocol
  (ASGI lifespan spec: ``lifespan.startup`` before any request, ``lifespan.shutdown``
  at the end, one ``state`` dict copied into every request's scope), drives HTTP
  requests with ``http.request``/``http.disconnect`` and checks the order of the
  app's ``send`` messages, and holds WebSocket sessions.

What they deliberately don't do: HTTP framing, keep-alive, timeouts, concurrency.
That is the servers' work (``servers/``); these drivers are the control group.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

Headers = list[tuple[str, str]]


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

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts: Iterator[bytes] = iter(parts)
        self._buffer = b""
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while want < 0 or len(self._buffer) < want:
            part = next(self._parts, None)
            if part is None:
                return
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


def _split_target(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


# --------------------------------------------------------------------------- WSGI


class WSGIDriver:
    """Call a WSGI application the way a server would, one request at a time."""

    interface = "wsgi"

    def __init__(self, app: Callable[..., Any], *, validate: bool = True) -> None:
        if validate:
            from wsgiref.validate import validator

            app = validator(app)
        self.app = app

    def environ(
        self,
        method: str,
        target: str,
        headers: Headers = (),  # type: ignore[assignment]
        body: BodyStream | None = None,
        content_length: int | None = None,
    ) -> dict[str, Any]:
        """The environ for one request (PEP 3333, "environ Variables")."""
        path, query = _split_target(target)
        # PEP 3333: PATH_INFO is the decoded path, carried as latin-1 "bytes in str".
        path_info = unquote(path, encoding="latin-1")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body or BodyStream(()),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if content_length is not None:
            environ["CONTENT_LENGTH"] = str(content_length)
        else:
            # A body of unknown length (chunked): the server promises EOF at its end.
            environ["wsgi.input_terminated"] = True
        for name, value in headers:
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if key == "CONTENT_TYPE":
                    environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        return environ

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),  # type: ignore[assignment]
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
        stream = BodyStream(parts)
        environ = self.environ(method, target, headers, stream, content_length)
        if content_length is None and not chunked:
            environ.pop("wsgi.input_terminated", None)  # no body at all
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
        return self.request(
            "GET",
            path,
            headers=[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
        )

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
        self.state: dict[str, Any] = {}
        self.lifespan_supported: bool | None = None
        self.lifespan_messages: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asgi-driver", daemon=True)
        self._thread.start()
        self._lifespan_in: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_task: asyncio.Future[None] | None = None
        if lifespan:
            self._call(self._startup())

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)  # type: ignore[arg-type]

    # -- lifespan (ASGI lifespan spec) ------------------------------------------

    async def _startup(self) -> None:
        self._lifespan_in = asyncio.Queue()
        out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def send(message: dict[str, Any]) -> None:
            self.lifespan_messages.append(message)
            await out.put(message)

        async def run() -> None:
            try:
                await self.app(scope, self._lifespan_in.get, send)  # type: ignore[union-attr]
            except Exception as exc:  # spec: an app that raises here does not support lifespan
                await out.put({"type": "layercake.lifespan.unsupported", "error": repr(exc)})

        self._lifespan_task = asyncio.ensure_future(run())
        await self._lifespan_in.put({"type": "lifespan.startup"})
        reply = await out.get()
        if reply["type"] == "lifespan.startup.complete":
            self.lifespan_supported = True
        elif reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"lifespan startup failed: {reply.get('message', '')}")
        else:
            self.lifespan_supported = False
        self._lifespan_out = out

    async def _shutdown(self) -> None:
        if not self.lifespan_supported or self._lifespan_in is None:
            return
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._lifespan_out.get(), self.timeout)

    # -- HTTP (ASGI HTTP connection scope) ---------------------------------------

    def scope(self, method: str, target: str, headers: Headers = ()) -> dict[str, Any]:  # type: ignore[assignment]
        path, query = _split_target(target)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": dict(self.state),  # lifespan spec: a shallow copy per request
        }

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),  # type: ignore[assignment]
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
        scope = self.scope("GET", path)
        scope.update(type="websocket", scheme="ws", subprotocols=[])
        scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
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
