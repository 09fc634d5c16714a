"""Bridges: a WSGI app on an ASGI server, and an ASGI app on a WSGI server (a2wsgi).

Theory of operation
-------------------
**WSGI -> ASGI** (``wsgi_to_asgi``): ``a2wsgi.WSGIMiddleware`` is an ASGI app.  For each
HTTP request it builds a PEP 3333 environ from the scope and runs the WSGI callable in a
``ThreadPoolExecutor`` (``threads`` workers, a2wsgi's default 10), feeding ``wsgi.input``
from ``receive()`` and turning ``start_response`` and the body iterable into
``http.response.*`` messages through a small bounded queue.  So the event loop never
blocks, but a WSGI app still needs one thread per request in flight: an ASGI server in
front does not make ``time.sleep`` concurrent beyond the pool size.  A WebSocket
connection is closed before it is accepted (the client sees 403 on most servers, where a
WSGI layer on a WSGI server answers 404), and the lifespan protocol is acknowledged and
otherwise ignored -- WSGI has neither.

**ASGI -> WSGI** (``asgi_to_wsgi``): ``a2wsgi.ASGIMiddleware`` is a WSGI callable.  It
runs one asyncio event loop in a daemon thread per process, and for each request
schedules the ASGI app on it, blocking the server's worker thread until the response
arrives.  What is lost: WebSockets (a WSGI server cannot hand over the socket) and the
lifespan protocol -- a2wsgi never sends ``lifespan.startup``.  a2wsgi reads request bodies
from ``wsgi.input`` up to ``CONTENT_LENGTH``, so a chunked upload (no Content-Length)
would arrive empty; the bridge buffers such a body first (``_buffer_unsized_body``).

In the other direction a2wsgi's ``wsgi.input`` ends where the body ends but does not say
so; the bridge sets ``wsgi.input_terminated`` so that a careful app reads chunked uploads.

**Lifespan through ASGI -> WSGI: our choice.**  Our ASGI layers open their store in
lifespan startup (CONTRACT.md #13), and open it lazily on first use if startup never
ran.  The bridge below *drives the lifespan itself*, once per process, on a2wsgi's own
event loop, before the first request: it sends ``lifespan.startup``, waits for
``lifespan.startup.complete``, and sends ``lifespan.shutdown`` at interpreter exit.  So
``/health`` reports ``"startup_complete": true`` through the bridge as it does on an ASGI
server, and a startup failure stops the server from starting rather than surfacing as a
500 later.  Set ``LAYERCAKE_BRIDGE_LIFESPAN=off`` to see the other behaviour (the store is
opened lazily and ``startup_complete`` is false).  The lifespan ``state`` dict (ASGI
lifespan spec, "Lifespan State") is copied into each request's scope, as a server does.

**Loading by import string.**  Servers in a subprocess load the app from a
``module:attr`` string, so this module exposes two ready-made attributes, each built at
import from an environment variable naming the real app::

    LAYERCAKE_WSGI_APP=layers.flask.app:app     uvicorn servers.bridges:wsgi_on_asgi
    LAYERCAKE_ASGI_APP=layers.fastapi.app:app   gunicorn servers.bridges:asgi_on_wsgi

Building at import (in each worker process, after the fork) means a bad target fails
the server's start, the first request is not the one that pays for the import, and every
worker has its own thread pool, event loop and store.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from servers.lifespan import LifespanRunner

WSGI_APP_ENV = "LAYERCAKE_WSGI_APP"  # the WSGI app that wsgi_on_asgi serves
ASGI_APP_ENV = "LAYERCAKE_ASGI_APP"  # the ASGI app that asgi_on_wsgi serves
THREADS_ENV = "LAYERCAKE_BRIDGE_THREADS"  # WSGI->ASGI thread pool size
LIFESPAN_ENV = "LAYERCAKE_BRIDGE_LIFESPAN"  # "on" (default) | "off": ASGI->WSGI drives lifespan?

#: a2wsgi's own default pool size; the same order as gunicorn-gthread's 8 or waitress's 4.
DEFAULT_THREADS = 10
#: How long a lifespan startup may take before the bridge gives up (uvicorn has no limit;
#: ours open an in-memory SQLite database, which takes milliseconds).
LIFESPAN_TIMEOUT = 30.0

#: The most a chunked upload through ASGI->WSGI is buffered before the app sees it: the
#: largest body the contract accepts (16 MiB, /echo); one byte more tells the app "too big".
BUFFER_LIMIT = 16 * 1024 * 1024

ENV_FOR = {"wsgi->asgi": WSGI_APP_ENV, "asgi->wsgi": ASGI_APP_ENV}
TARGET_FOR = {"wsgi->asgi": "servers.bridges:wsgi_on_asgi", "asgi->wsgi": "servers.bridges:asgi_on_wsgi"}

#: What each direction costs, for the registry's notes and the grid.
LOSSES = {
    "wsgi->asgi": (
        f"the WSGI app runs in a thread pool ({THREADS_ENV}, default {DEFAULT_THREADS}; --threads sets it): "
        "no more requests in flight than threads",
        "WebSocket connections are closed before accept (403), where a WSGI server answers 404",
        "lifespan is acknowledged and ignored (WSGI has none)",
    ),
    "asgi->wsgi": (
        "no WebSockets: a WSGI server cannot hand the socket to the app",
        "no lifespan from the server: the bridge drives startup/shutdown itself once per process "
        f"({LIFESPAN_ENV}=off to let the store open lazily instead)",
        "buffering: a chunked upload (no Content-Length) is read whole, up to 16 MiB + 1, before the app "
        "sees a byte (a2wsgi alone would pass it on empty)",
        "each request blocks one server thread while the ASGI app runs on the bridge's event loop",
    ),
}


#: Contract cases a bridge cannot pass, case id -> why (the grid marks these "known").
GAPS: dict[str, dict[str, str]] = {
    "wsgi->asgi": {
        "ws_not_in_wsgi": "a2wsgi closes a WebSocket before accepting it, so the client sees 403, not the "
        "WSGI layer's 404 -- the app is never asked",
    },
    "asgi->wsgi": {
        "ws_echo": "a WSGI server has no WebSocket: the upgrade request reaches the app as plain HTTP",
    },
}


def target_for(bridge: str) -> str:
    """The import string a server loads for ``bridge`` ("wsgi->asgi" or "asgi->wsgi")."""
    return TARGET_FOR[bridge]


def load(target: str) -> Any:
    """Import ``module:attr`` (attr may be dotted) and return the object."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------
# WSGI -> ASGI
# --------------------------------------------------------------------------------------


def wsgi_to_asgi(app: Callable[..., Iterable[bytes]], threads: int = DEFAULT_THREADS) -> Any:
    """An ASGI app running the WSGI ``app`` in a pool of ``threads`` threads."""
    from a2wsgi import WSGIMiddleware

    # Any, not dict[str, Any]: a2wsgi types its environ and scopes as TypedDicts, and ours are plain dicts.
    def terminated(environ: Any, start_response: Any) -> Iterable[bytes]:
        # a2wsgi's wsgi.input returns b"" at the end of the body whether or not the client
        # sent Content-Length (a chunked upload on an ASGI server has none), which is what
        # ``wsgi.input_terminated`` promises (the WSGI "input terminated" extension, honoured
        # by Werkzeug and our layers).  Without the flag a careful PEP 3333 app may not read
        # past CONTENT_LENGTH -- so it would read a chunked upload as empty.
        environ.setdefault("wsgi.input_terminated", True)
        return app(environ, start_response)

    middleware = WSGIMiddleware(terminated, workers=threads)

    async def bridge(scope: Any, receive: Any, send: Any) -> None:
        # The ASGI spec promises only that ``receive`` is an awaitable callable; a2wsgi hands
        # ``receive()`` to run_coroutine_threadsafe, which wants a real coroutine.  Granian's
        # receive returns a Rust future, so wrap it in one.
        async def receive_coroutine() -> Any:
            return await receive()

        await middleware(scope, receive_coroutine, send)

    bridge.threads = threads  # type: ignore[attr-defined]  # a function attribute, for the tools that show it
    return bridge


# --------------------------------------------------------------------------------------
# ASGI -> WSGI
# --------------------------------------------------------------------------------------


class LifespanDriver:
    """Runs one ASGI lifespan cycle on ``loop`` (a loop running in another thread), with the servers'
    :class:`~servers.lifespan.LifespanRunner` -- so the bridge reads an application's lifespan answers exactly as
    scratch-asgi does.  An application that raises on the lifespan scope does not support it; the spec says a
    server then carries on without it, and so does the bridge.
    """

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, state: dict[str, Any]) -> None:
        self.loop = loop
        self.runner = LifespanRunner(app, state=state)
        self.supported = False

    def startup(self, timeout: float = LIFESPAN_TIMEOUT) -> None:
        outcome = asyncio.run_coroutine_threadsafe(self.runner.startup(timeout), self.loop).result()
        if outcome.failed is not None:
            raise RuntimeError(f"ASGI lifespan startup failed: {outcome.failed}")
        self.supported = outcome.supported

    def shutdown(self, timeout: float = 5.0) -> None:
        if not self.supported:
            return
        self.supported = False
        try:
            asyncio.run_coroutine_threadsafe(self.runner.shutdown(timeout), self.loop).result(timeout + 1)
        except Exception:  # noqa: BLE001 -- at interpreter exit, a failed shutdown is only logged by the app
            pass


def _ended_on_eof(receive: Any) -> Any:
    """``receive`` that reports a client gone mid-body as ``http.disconnect``.

    a2wsgi reads ``wsgi.input`` up to ``CONTENT_LENGTH``; when the client goes away first,
    every read returns ``b""`` and a2wsgi hands the app an empty chunk with ``more_body:
    True`` -- again at every ``receive()``, for ever.  An app that waits for the whole body
    (Django's ASGIHandler) then spins, and on a one-worker sync server (wsgiref,
    gunicorn's sync worker) nothing else is served.  A blocking read returns nothing only
    at end of input, so that chunk means the client is gone: the ASGI HTTP spec's
    ``http.disconnect``.  (Unsized bodies never get here: they are buffered first.)
    """

    async def guarded() -> dict[str, Any]:
        message: dict[str, Any] = await receive()
        if message["type"] == "http.request" and not message.get("body") and message.get("more_body"):
            return {"type": "http.disconnect"}
        return message

    return guarded


def asgi_to_wsgi(app: Any, lifespan: bool = True) -> Any:
    """A WSGI callable running the ASGI ``app``; with ``lifespan``, startup has run on return."""
    from a2wsgi import ASGIMiddleware

    state: dict[str, Any] = {}

    async def with_state(scope: Any, receive: Any, send: Any) -> None:  # Any: a2wsgi's TypedDicts, as above
        started = False

        async def noting_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        # ASGI lifespan spec: each request scope gets a shallow copy of the lifespan state.
        await app({**scope, "state": dict(state)}, _ended_on_eof(receive), noting_send)
        if scope["type"] == "http" and not started:
            # The app returned without a response (Django does, for a client gone mid-body).
            # a2wsgi would wait for one for ever, holding the WSGI worker; the ASGI HTTP spec
            # has the server answer 500 instead, so the bridge does (nobody may read it).
            body = b"Internal Server Error"
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    asgi_middleware = ASGIMiddleware(with_state)

    def middleware(environ: Any, start_response: Any) -> Iterable[bytes]:
        if "CONTENT_LENGTH" not in environ and environ.get("wsgi.input_terminated"):
            _buffer_unsized_body(environ)
        return _Primed(asgi_middleware(environ, start_response))

    if lifespan:
        driver = LifespanDriver(app, asgi_middleware.loop, state)
        driver.startup()
        atexit.register(driver.shutdown)
        middleware.lifespan = driver  # type: ignore[attr-defined]  # for whoever wants to look: .supported
    return middleware


class _Primed:
    """The response iterable with its first item already pulled, so start_response has run.

    a2wsgi's ASGIMiddleware returns a generator that calls ``start_response`` only when
    first iterated -- which PEP 3333 allows: the call "may be performed by the iterable's
    first iteration, so servers must not assume that start_response() has been called
    before they begin iterating over the iterable".  Granian's WSGI interface reads the status and headers as soon
    as the app returns, so behind it every response was a 200 with no headers.  Pulling
    the first item here costs nothing on other servers: they would pull it next anyway.
    """

    def __init__(self, iterable: Iterable[bytes]) -> None:
        self._iterable = iterable
        self._iterator = iter(iterable)
        self._first = next(self._iterator, None)

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._iterator

    def close(self) -> None:
        # PEP 3333: the server calls close() on the iterable it got; pass it on.
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()


def _buffer_unsized_body(environ: dict[str, Any]) -> None:
    """Read a body that has no Content-Length (chunked) into a spooled file and size it.

    a2wsgi feeds the ASGI app ``min(64 KiB, CONTENT_LENGTH - read)`` bytes at a time, so a
    body without CONTENT_LENGTH arrives empty.  When the WSGI server promises the input
    ends where the body ends (``wsgi.input_terminated``: gunicorn, Werkzeug, waitress,
    granian, ours), we read it first -- at most BUFFER_LIMIT + 1 bytes, so a huge upload
    is cut short rather than stored -- and set CONTENT_LENGTH to what we read.  An app
    with a 16 MiB limit then sees 16 MiB + 1 and answers 413.  This is the buffering the
    bridge costs: the app sees no byte of a chunked upload until the last one arrived.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
    stream, size = environ["wsgi.input"], 0
    while size <= BUFFER_LIMIT:
        data = stream.read(min(65536, BUFFER_LIMIT + 1 - size))
        if not data:
            break
        spool.write(data)
        size += len(data)
    spool.seek(0)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = spool, str(size)


# --------------------------------------------------------------------------------------
# The import-string targets
# --------------------------------------------------------------------------------------


class _Unconfigured:
    """Stands in for a bridge whose environment variable is not set: says so when called."""

    def __init__(self, env: str) -> None:
        self.env = env

    def _message(self) -> str:
        return f"servers.bridges: set {self.env}=module:attr to name the app this bridge serves"


class _UnconfiguredASGI(_Unconfigured):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError(self._message())


class _UnconfiguredWSGI(_Unconfigured):
    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        raise RuntimeError(self._message())


def _wsgi_on_asgi_from_environment() -> Any:
    target = os.environ.get(WSGI_APP_ENV)
    if not target:
        return _UnconfiguredASGI(WSGI_APP_ENV)
    return wsgi_to_asgi(load(target), int(os.environ.get(THREADS_ENV) or DEFAULT_THREADS))


def _asgi_on_wsgi_from_environment() -> Any:
    target = os.environ.get(ASGI_APP_ENV)
    if not target:
        return _UnconfiguredWSGI(ASGI_APP_ENV)
    return asgi_to_wsgi(load(target), lifespan=os.environ.get(LIFESPAN_ENV, "on") != "off")


#: An ASGI app: the WSGI app named by $LAYERCAKE_WSGI_APP, run in a thread pool.
wsgi_on_asgi = _wsgi_on_asgi_from_environment()
#: A WSGI app: the ASGI app named by $LAYERCAKE_ASGI_APP, its lifespan started already.
asgi_on_wsgi = _asgi_on_wsgi_from_environment()
