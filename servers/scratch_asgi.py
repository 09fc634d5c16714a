"""scratch-asgi: an asyncio ASGI server, written to be read.

Theory of operation
-------------------
An ASGI application is a coroutine: ``await app(scope, receive, send)`` suspends whenever it waits -- for the
request body, for the client to read the response, for a database.  So an ASGI server's concurrency model is *one
thread, one event loop, many tasks*: the loop multiplexes every socket, and each request runs as a task that
yields back to the loop at every ``await``.  Nothing blocks; a slow client costs a buffer, never a thread.

* **Accept loop**: ``loop.create_server`` accepts connections on the listening socket and makes one
  :class:`Connection` (an ``asyncio.Protocol``) per socket.  Before that, the lifespan protocol runs the app's
  startup (``servers/lifespan.py`` on the core's lifespan rules); after a signal, its shutdown.
* **Connection**: the protocol's callbacks -- ``data_received``, ``eof_received``, ``connection_lost``,
  ``pause_writing`` -- are called by the loop.  Flow control is a small visible object, :class:`FlowControl`:
  reading pauses when the app is not consuming its body (above a high-water mark) or when the connection says a
  pipelined request must wait; ``send()`` waits when the transport's write buffer is full, so a slow reader slows
  the app instead of filling memory.  The connection's deadline is one ``loop.call_at`` timer.
* **Event loop over the connection's events**: bytes go to the sans-I/O
  :class:`~servers.core.connection.ServerConnection`, and ``_drive`` acts on each event it returns: a request head
  starts a task, a piece of body goes to that task, a refusal is written and the connection lingers.
* **Request cycle**: a task runs the app with ``receive`` and ``send`` closures over one :class:`RequestCycle`; the
  send rules are the core's ``HTTPSend`` state machine.  When the client goes away, ``receive()`` returns
  ``http.disconnect`` and ``send()`` raises ``ClientDisconnected`` (an ``OSError``), as the ASGI spec 2.4 asks --
  uvicorn and hypercorn silently drop such sends.  A WebSocket handshake runs a WebSocket cycle instead
  (``scratch_websocket.py``), the frames handled by the core's wsproto session.

Every protocol decision -- what a head may look like, 100 Continue, the body limit, keep-alive, draining an unread
body, which timeout runs when, how a refusal ends -- is the connection's (``servers/core/connection.py``); this file
holds the concurrency model only.

Shutdown (SIGTERM or SIGINT): stop accepting, close connections that owe nothing, close WebSockets with 1012
"service restart" (SIGTERM: a process manager restarting us; clients should reconnect) or 1001 "going away"
(SIGINT: an operator stopping the server), let in-flight requests finish for up to ``Limits.graceful_timeout``, run
the lifespan shutdown, exit 0.

The sections below are in the same order as in ``scratch_wsgi.py`` -- accept loop, connection, event loop over the
connection's events, request cycle -- so that ``diff servers/scratch_wsgi.py servers/scratch_asgi.py`` shows what
changes between a threaded and an event-loop server, and nothing else.

Spec: ASGI 3.0 with HTTP & WebSocket spec 2.4 and lifespan 2.0; RFC 9112 and RFC 9110 through the connection;
RFC 6455.  Not supported, deliberately: TLS, HTTP/2, permessage-deflate, server-sent WebSocket pings (the client or
a proxy can ping; we always answer).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from servers.core.asgi import HTTPSend, SendState, http_scope
from servers.core.connection import OVERLOADED, S, ServerConnection
from servers.core.events import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    BodyError,
    Data,
    EndOfMessage,
    Event,
    Rejected,
    RequestHead,
    WebSocketRequest,
)
from servers.core.http import ClientDisconnected, DateHeader, RequestBodyError, peer
from servers.core.limits import Limits
from servers.core.writer import ResponseError
from servers.lifespan import LifespanRunner
from servers.scratch_common import (
    STARTUP_FAILED,
    bind,
    in_thread,
    limits_from,
    log_access,
    loop_factory,
    parser,
    run_main,
    run_workers,
)
from servers.scratch_websocket import WebSocketCycle

NAME = "scratch-asgi"
SERVER_HEADER = NAME.encode()
# Request body buffered for an app that is not calling receive(): above this, stop reading the socket
# (uvicorn's HIGH_WATER_LIMIT is 64 KiB too).
HIGH_WATER = 65536

log = logging.getLogger("layercake.server")


@dataclass
class Config:
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    access_log: bool = True
    lifespan: str = "auto"  # "auto": run it, tolerate apps without it; "on": require it; "off": skip it
    http: str = "h11"  # the request parser (servers/core/parsers.py)


# =================================================================================================================
# Accept loop
# =================================================================================================================


class Server:
    """Lifespan, the listening socket, signals and the graceful shutdown.  ``serve(sock, ready)`` returns the exit
    code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits = config.limits
        self.app = config.app
        self.date = DateHeader()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # running app calls: the requests in flight
        self.should_exit = False
        self.force_exit = False  # a second signal: stop waiting for in-flight requests
        self.close_code = 1012  # for WebSockets at shutdown; 1001 after SIGINT (see _on_signal)
        self.state: dict[str, Any] | None = {}  # the lifespan state, shallow-copied into every scope
        self._exit: asyncio.Event | None = None

    async def serve(self, sock: socket.socket, ready: Callable[[], None] = lambda: None) -> int:
        loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        self.server_address = sock.getsockname()[:2]
        lifespan = LifespanRunner(self.app, "on" if self.config.lifespan == "on" else "auto")
        self.state = None  # no lifespan, no "state" key in scopes (ASGI lifespan spec, "Lifespan State")
        if self.config.lifespan != "off":
            outcome = await lifespan.startup()
            if outcome.failed is not None:
                print(f"layercake: application startup failed: {outcome.failed}", file=sys.stderr, flush=True)
                return STARTUP_FAILED
            if not outcome.supported:
                log.info("ASGI 'lifespan' protocol appears unsupported; continuing without it")
            self.state = lifespan.state if outcome.supported else None
        server = await loop.create_server(lambda: Connection(self), sock=sock, backlog=self.limits.backlog)
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        ready()
        await self._exit.wait()
        # -- graceful shutdown --
        server.close()  # stop accepting
        for connection in list(self.connections):
            connection.shutdown()
        deadline = loop.time() + self.limits.graceful_timeout
        while self.tasks and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        if self.tasks:
            log.warning("cancelling %d request(s) still running after the grace period", len(self.tasks))
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for connection in list(self.connections):
            connection.transport.close()
        if self.config.lifespan != "off":
            outcome = await lifespan.shutdown()
            if outcome.failed is not None:
                log.error("lifespan shutdown failed: %s", outcome.failed)
        return 0

    def _on_signal(self, signum: int) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal: stop waiting for in-flight requests
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.close_code = 1001 if signum == signal.SIGINT else 1012
        self.stop()

    def stop(self) -> None:
        """Ask for a graceful shutdown (call from the loop's thread, or via ``loop.call_soon_threadsafe``)."""
        self.should_exit = True
        if self._exit is not None:
            self._exit.set()


# =================================================================================================================
# Connection
# =================================================================================================================


class FlowControl:
    """Backpressure both ways, in one visible place.

    Reading: ``pause_reading()`` when the app does not keep up with the request body (or a pipelined request must
    wait for the current response); the kernel's receive window then fills and TCP slows the client down.
    Writing: the transport calls ``pause_writing()`` when its buffer passes its high-water mark; ``send()`` then
    awaits ``drain()`` until ``resume_writing()``.
    """

    __slots__ = ("transport", "read_paused", "write_paused", "_writable")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.read_paused = False
        self.write_paused = False
        self._writable = asyncio.Event()
        self._writable.set()

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._writable.clear()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()


class Connection(asyncio.Protocol):
    """One client socket and its :class:`ServerConnection`: the loop calls these methods as bytes arrive and leave."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        # asyncio's loop.time() is time.monotonic() behind a Python method, and the connection reads its clock on
        # every request: where the two are the same, it gets the function itself (uvloop's loop.time is C already).
        clock = time.monotonic if type(self.loop).time is asyncio.BaseEventLoop.time else self.loop.time
        self.conn = ServerConnection(
            server.limits,
            server_header=SERVER_HEADER,
            date=server.date,
            parser=server.config.http,
            websockets=True,
            clock=clock,
        )
        self.cycle: RequestCycle | None = None
        self.last_cycle: RequestCycle | None = None  # the finished one, kept until the next head (after_response)
        self.websocket: WebSocketCycle | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None

    # -- asyncio.Protocol callbacks ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_server makes TCP transports.  A cast, not an isinstance assert: uvloop's TCPTransport (--loop
        # uvloop) has asyncio.Transport's methods without subclassing it.
        self.transport: asyncio.Transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(self.transport)
        peer = transport.get_extra_info("peername")
        self.client = tuple(peer[:2]) if peer else None
        # No TCP_NODELAY here: asyncio and uvloop both set it on every TCP transport (scratch-wsgi sets its own).
        # It matters: responses are written whole, and Nagle would hold the last segment back for a delayed ACK.
        self.server.connections.add(self)
        if self.server.should_exit:
            self.transport.close()
            return
        self._sync_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.conn.connection_lost()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = self.timer_at = None
        self.flow.resume_writing()  # release a send() waiting for drain; it will see the disconnect and raise
        if self.cycle is not None:
            self.cycle.on_disconnect()
        if self.websocket is not None:
            self.websocket.on_disconnect()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.websocket is not None:
            if self.websocket.session is not None:
                self.websocket.feed(data)
            else:  # the handshake waits for the app: these are early frames, kept for the session
                self.conn.receive_data(data)
            return
        self.conn.receive_data(data)
        self._drive()

    def eof_received(self) -> bool | None:
        """The client shut down its sending side.  If its request is complete it may still be waiting for the
        answer (``printf 'GET / ...' | nc -N`` does this): keep the transport open for writing, as the connection
        decides; ``_drive`` closes when it says ``CLOSED``."""
        if self.websocket is not None and self.websocket.session is not None:
            return None
        self.conn.receive_data(b"")
        self._drive()
        return None if self.transport.is_closing() else True

    # -- the connection's deadline: one timer --------------------------------------------------------------------
    def _sync_timer(self) -> None:
        """Keep one timer at or before the connection's deadline.  Lazily: a timer due *earlier* than the deadline
        is left alone -- when it fires, ``handle_timeout`` finds nothing due and the timer is set again.  A busy
        keep-alive connection moves its deadline later on every request; this way that costs no timer operation,
        and the timer fires about once per timeout.  (nginx is lazy in the same direction: ``ngx_add_timer`` leaves
        a timer alone that would move by less than ``NGX_TIMER_LAZY_DELAY``, 300 ms.)"""
        deadline = self.conn.deadline
        if deadline is None or (self.timer_at is not None and self.timer_at <= deadline):
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_at = self.loop.call_at(deadline, self._on_timer), deadline

    def _on_timer(self) -> None:
        self.timer = self.timer_at = None
        event = self.conn.handle_timeout()
        if type(event) is BodyError and self.cycle is not None:
            self.cycle.on_body_error(event)
        self._act(event)
        self._sync_timer()

    # -- shutting down ------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """The server is stopping: connections that owe nothing close now; busy ones after their response."""
        if self.websocket is not None:
            self.websocket.shutdown(self.server.close_code)
        elif self.conn.shutdown():
            self.transport.close()

    def reject(self, rejection: Rejected) -> None:
        """Write a refusal and start the lingering close the connection asked for."""
        log.info("%s rejected %d (%s: %s)", peer(self.client), rejection.status, rejection.rule, rejection.reason)
        self.transport.write(rejection.data)
        self.linger()

    def linger(self) -> None:
        """The connection is closing: stop writing, keep discarding input until its deadline (then ``CLOSED``)."""
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    # =============================================================================================================
    # Event loop over the connection's events
    # =============================================================================================================

    def _drive(self) -> None:
        """Act on the connection's events until it needs bytes (read) or says PAUSED (stop reading).  The
        checks are ``type(...) is`` and ordered by how often they hold: this runs twice per request."""
        conn = self.conn
        while True:
            event = conn.next_event()
            cycle = self.cycle
            if type(event) is RequestHead:
                self._start(event)
            elif type(event) is EndOfMessage and cycle is not None:
                cycle.on_body_end()
            elif type(event) is Data and cycle is not None:
                cycle.on_body(event.data)
            elif event is NEED_DATA:
                if cycle is None or len(cycle.body) <= HIGH_WATER:
                    if self.flow.read_paused:
                        self.flow.resume_reading()
                else:
                    self.flow.pause_reading()  # the app is not reading its body fast enough: slow the client down
                break
            elif event is PAUSED:
                self.flow.pause_reading()  # a pipelined request waits for the current response
                break
            elif type(event) is BodyError and cycle is not None:
                cycle.on_body_error(event)
            elif type(event) is WebSocketRequest:
                self.websocket = WebSocketCycle(self, event.head)
                self._run(self.websocket.run())
                self.flow.pause_reading()  # until accepted, frames have nowhere to go
                break
            else:
                self._act(event)
                break
        if conn.state is not S.DONE:  # the usual state here, a request read and its response due: DONE has no timer
            self._sync_timer()

    def _act(self, event: Event) -> None:
        if isinstance(event, Rejected):
            self.reject(event)
        elif event is CLOSED:
            self.transport.close()

    def _start(self, head: RequestHead) -> None:
        server = self.server
        if server.limits.max_concurrency and len(server.tasks) >= server.limits.max_concurrency:
            self._act(self.conn.refuse(OVERLOADED))
            return
        self.last_cycle = None  # see after_response
        self.cycle = RequestCycle(self, head)
        self._run(self.cycle.run())

    def _run(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def after_response(self) -> None:
        """The cycle's last bytes are written: close, linger, or go on to the next request, as the connection says."""
        # The finished cycle (its scope, head, writer ...) is kept until the next request's are made, not freed
        # now.  Speed (issue 12), and about the garbage collector, not memory: CPython collects when allocations of
        # container objects outrun deallocations by 700 (gc.get_threshold()), and under load uvloop reads every
        # ready socket before any task runs -- at 64 connections, 64 requests' objects at once, and a collection
        # nearly every loop iteration (16 per 1000 requests under wrk, 5-7% of the CPU) if the previous ones were
        # freed long before.  Freed as the next are made, the count stays level: 0.06 per 1000.  (uvicorn keeps
        # its last cycle the same way, as ``self.cycle``.)
        self.last_cycle, self.cycle = self.cycle, None
        state = self.conn.state
        if state is S.IDLE:  # the usual case, and nothing for _drive to do but resume reading
            if self.flow.read_paused:
                self.flow.resume_reading()
            self._sync_timer()
            return
        if state is S.CLOSED:
            self.transport.close()
        elif state is S.LINGER:
            self.linger()
        self._drive()


# =================================================================================================================
# Request cycle
# =================================================================================================================


class RequestCycle:
    """One HTTP request: the app's ``receive`` and ``send``, the body buffered between socket and app."""

    def __init__(self, connection: Connection, head: RequestHead) -> None:
        server = connection.server
        self.connection = connection
        self.transport = connection.transport
        self.conn = connection.conn
        self.head = head
        self.scope = http_scope(head, server=server.server_address, client=connection.client, state=server.state)
        writer = self.conn.writer
        assert writer is not None  # the connection made this cycle's writer with its head
        self.writer = writer
        self.sender = HTTPSend(writer)
        self.body = bytearray()
        self.body_done = False
        self.body_delivered = False  # the final http.request (more_body False) went to the app
        self.body_error: RequestBodyError | None = None
        self.disconnected = False
        self.wakeup: asyncio.Event | None = None  # created only when receive() must wait
        self.access_log = server.config.access_log
        self.started_at = time.perf_counter() if self.access_log else 0.0

    # -- from the connection ---------------------------------------------------------------------------------
    def on_body(self, data: bytes) -> None:
        self.body += data
        self._wake()

    def on_body_end(self) -> None:
        self.body_done = True
        if self.wakeup is not None:
            self.wakeup.set()

    def on_body_error(self, event: BodyError) -> None:
        self.body_error = RequestBodyError(event.status, event.reason)
        self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()

    # -- the app's receive and send ----------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        # Wait for something to say.  Once the whole body has been handed over, the only news left is the end:
        # ASGI HTTP spec, "Disconnect": sent "if receive is called after a response has been sent or after the
        # HTTP connection has been closed" -- so a long-polling app can wait here for its client to leave.
        while not (
            self.disconnected
            or self.body_error
            or self.sender.done
            or (not self.body_delivered and (self.body or self.body_done))
        ):
            if not self.body_delivered:
                interim = self.conn.want_body()  # 100 Continue, the first time the app asks; the body timer
                if interim:
                    self.transport.write(interim)
                self.connection.flow.resume_reading()
                self.connection._sync_timer()
            if self.wakeup is None:
                self.wakeup = asyncio.Event()
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.body_error is not None:
            raise self.body_error
        if self.disconnected or self.sender.done or self.body_delivered:
            return {"type": "http.disconnect"}
        body, self.body = bytes(self.body), bytearray()
        self.body_delivered = self.body_done
        if self.connection.flow.read_paused and not self.body_done:
            self.connection._drive()  # the buffer is empty again: resume reading
        return {"type": "http.request", "body": body, "more_body": not self.body_done}

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            # ASGI spec 2.4: "If send() is called on a closed connection the server should raise a server-specific
            # subclass of OSError."  The app learns the client is gone and can stop producing.
            raise ClientDisconnected(f"client disconnected; {message.get('type')!r} not sent")
        data = self.sender.message(message)
        if data:
            self.transport.write(data)
            if self.connection.flow.write_paused:  # the transport's buffer is above its high-water mark
                await self.connection.flow.drain()
        if self.sender.done:
            if self.access_log:
                log_access(self.connection.client, self.head, self.writer, self.started_at)
            self.connection.after_response()

    # -- the app call -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
        except ClientDisconnected as exc:
            log.debug("%s %s", peer(self.connection.client), exc)
        except RequestBodyError as exc:  # the client's fault, found while reading the body: 413, 400, 408
            self.fail(exc.status, exc.reason)
        except ResponseError as exc:  # e.g. more body than the declared Content-Length: the response is broken
            log.error("%s %s: %s", self.scope["method"], self.scope["raw_path"].decode("latin-1"), exc)
            self.fail(500, "Internal Server Error")
        except Exception:
            # The traceback goes to the log, never to the client (CONTRACT.md #12).
            log.exception("application error on %s %s", self.scope["method"], self.scope["raw_path"].decode("latin-1"))
            self.fail(500, "Internal Server Error")
        else:
            if not self.sender.done and not self.disconnected:
                log.error(
                    "ASGI callable returned without %s the response (%s %s)",
                    "starting" if self.sender.state is SendState.START else "completing",
                    self.scope["method"],
                    self.scope["raw_path"].decode("latin-1"),
                )
                self.fail(500, "Internal Server Error")

    def fail(self, status: int, message: str) -> None:
        if self.disconnected or self.writer.finished:
            return  # the response is complete (Starlette's ServerErrorMiddleware re-raises after sending its 500)
        if self.sender.started:
            self.conn.abort()  # too late for an error status: cut the connection so the client knows
            self.transport.close()
            return
        self.sender.answered_by_server()
        self.transport.write(self.conn.send_error(status, message))
        if self.access_log:
            log_access(self.connection.client, self.head, self.writer, self.started_at)
        self.connection.after_response()


# =================================================================================================================
# Entry points
# =================================================================================================================


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    limits: Limits | None = None,
    access_log: bool = True,
    lifespan: str = "auto",
    http: str = "h11",
    loop: str = "asyncio",
) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the exit code.  Prints the serving line once listening (and
    after the lifespan startup)."""
    config = Config(app, host, port, workers, limits or Limits(), access_log, lifespan, http)
    sock = bind(host, port, config.limits.backlog)

    def child(ready: Callable[[], None]) -> int:
        # asyncio.run(main, loop_factory=...) from Python 3.12; asyncio.Runner is the same thing on 3.11.
        # --loop uvloop: the same code on libuv's loop (scratch_common.loop_factory).
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            return runner.run(Server(config).serve(sock, ready))

    return run_workers(workers, sock, child)


@contextmanager
def running(
    app: Any,
    *,
    limits: Limits | None = None,
    access_log: bool = False,
    lifespan: str = "auto",
    http: str = "h11",
    loop_name: str = "asyncio",
) -> Iterator[str]:
    """For tests: serve ``app`` on a free loopback port in a background thread; yields the base URL."""
    config = Config(app, "127.0.0.1", 0, 1, limits or Limits(), access_log, lifespan, http)
    sock = bind("127.0.0.1", 0, config.limits.backlog)
    server = Server(config)
    loop = (loop_factory(loop_name) or asyncio.new_event_loop)()
    try:
        with in_thread(
            sock,
            lambda ready: loop.run_until_complete(server.serve(sock, ready)),
            lambda: loop.call_soon_threadsafe(server.stop),
        ) as url:
            yield url
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m servers.scratch_asgi", "scratch-asgi: an asyncio ASGI server", threads=False, loop=True)
    p.add_argument(
        "--lifespan",
        default="auto",
        choices=["auto", "on", "off"],
        help="run the ASGI lifespan protocol (auto: if the app supports it)",
    )
    return run_main(
        p,
        argv,
        lambda app, args: serve(
            app,
            args.host,
            args.port,
            workers=args.workers,
            limits=limits_from(args),
            access_log=args.access_log,
            lifespan=args.lifespan,
            http=args.http,
            loop=args.loop,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
