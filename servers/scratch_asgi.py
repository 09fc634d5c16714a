"""scratch-asgi: an asyncio ASGI server on h11 and wsproto, written to be read.

Theory of operation
-------------------
An ASGI application is a coroutine: ``await app(scope, receive, send)`` suspends whenever it waits -- for the
request body, for the client to read the response, for a database.  So an ASGI server's concurrency model is *one
thread, one event loop, many tasks*: the loop multiplexes every socket, and each request runs as a task that
yields back to the loop at every ``await``.  Nothing blocks; a slow client costs a buffer, never a thread.

* **Accept loop**: ``loop.create_server`` accepts connections on the listening socket and makes one
  :class:`Connection` (an ``asyncio.Protocol``) per socket.  Before that, the lifespan protocol runs the app's
  startup (``lifespan.startup``); after a signal, its shutdown.
* **Connection**: the protocol's callbacks -- ``data_received``, ``connection_lost``, ``pause_writing`` -- are
  called by the loop.  Bytes go first to a ``HeadReader`` (strict checks, header-read timeout), then to a fresh
  h11 connection per request cycle.  Flow control is a small visible object, :class:`FlowControl`: reading pauses
  when the app is not consuming the body (above a high-water mark) and while a pipelined request waits its turn;
  ``send()`` waits when the transport's write buffer is full (``pause_writing``), so a slow reader slows the app
  instead of filling memory.
* **Event loop over h11 events**: the body events of the current request are turned into ``http.request``
  messages; when the app's final ``http.response.body`` is sent, the connection either starts the next cycle with
  the bytes h11 did not parse (keep-alive, pipelining), or closes.
* **Request cycle**: a task runs the app with ``receive`` and ``send`` closures over one
  :class:`RequestCycle`; the send rules are the core's ``HTTPSend`` state machine.  When the client goes away,
  ``receive()`` returns ``http.disconnect`` and ``send()`` raises ``ClientDisconnected`` (an ``OSError``), as
  the ASGI spec 2.4 asks -- uvicorn and hypercorn silently drop such sends.  A WebSocket upgrade runs a
  :class:`WebSocketCycle` instead, the frames handled by the core's wsproto session.

Shutdown (SIGTERM or SIGINT): stop accepting, close idle connections, close WebSockets with 1012 "service restart"
(SIGTERM: a process manager restarting us; clients should reconnect) or 1001 "going away" (SIGINT: an operator
stopping the server), let in-flight requests finish for up to ``Limits.graceful_timeout``, run the lifespan
shutdown, exit 0.

The sections below are in the same order as in ``scratch_wsgi.py`` -- accept loop, connection, event loop over
h11 events, request cycle -- so that ``diff servers/scratch_wsgi.py servers/scratch_asgi.py`` shows what changes
between a threaded and an event-loop server.

Spec: ASGI 3.0 with HTTP & WebSocket spec 2.4 and lifespan 2.0; RFC 9112 (persistence §9.3, pipelining §9.3.2);
RFC 9110 (Expect §10.1.1); RFC 6455.  Not supported, deliberately: TLS, HTTP/2, permessage-deflate, server-sent
WebSocket pings (the client or a proxy can ping; we always answer).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import h11

from servers.core.asgi import ASGI_VERSION, ASGIProtocolError, HTTPSend, http_scope, websocket_scope
from servers.core.head import HeadReader, Rejection
from servers.core.http import (
    BodyTooLarge,
    ClientDisconnected,
    DateHeader,
    access_line,
    new_cycle,
    rejection_response,
    reusable,
)
from servers.core.limits import Limits
from servers.core.websocket import (
    Outcome,
    WebSocketSession,
    accept_response,
    handshake_problem,
    is_websocket_upgrade,
)
from servers.core.writer import CONTINUE, ResponseError, ResponseWriter, error_response
from servers.scratch_common import (
    STARTUP_FAILED,
    StartupFailed,
    bind,
    configure_logging,
    limits_from,
    load_app,
    parser,
    run_workers,
    url_of,
)

NAME = "scratch-asgi"
SERVER_HEADER = NAME.encode()
# Request body buffered for an app that is not calling receive(): above this, stop reading the socket
# (uvicorn's HIGH_WATER_LIMIT is 64 KiB too).
HIGH_WATER = 65536
# WebSocket messages queued for an app that is not calling receive(): above this, stop reading
# (the websockets library's max_queue is 16 too; uvicorn passes it --ws-max-queue, default 32).
WS_QUEUE_HIGH = 16
# How long a refused connection is read and discarded before closing (Apache's lingering close reads for up to
# 2 s between reads, 30 s in all; nginx lingering_time 30 s, lingering_timeout 5 s).  Short: it is a courtesy.
LINGER_SECONDS = 2.0

log = logging.getLogger("layercake.server")
access_log = logging.getLogger("layercake.access")


@dataclass
class Config:
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    access_log: bool = True
    lifespan: str = "auto"  # "auto": run it, tolerate apps without it; "on": require it; "off": skip it


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
        self.tasks: set[asyncio.Task[None]] = set()  # running app calls
        self.in_flight = 0
        self.should_exit = False
        self.force_exit = False  # a second signal: stop waiting for in-flight requests
        self.close_code = 1012  # for WebSockets at shutdown; 1001 after SIGINT (see _on_signal)
        self.state: dict[str, Any] = {}  # the lifespan state, shallow-copied into every scope
        self._exit: asyncio.Event | None = None

    async def serve(self, sock: socket.socket, ready: Callable[[], None] = lambda: None) -> int:
        loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        self.server_address = sock.getsockname()[:2]
        lifespan = Lifespan(self.app, self.state, self.config.lifespan)
        if self.config.lifespan != "off":
            await lifespan.startup()
            if lifespan.failed is not None:
                print(f"layercake: application startup failed: {lifespan.failed}", file=sys.stderr, flush=True)
                return STARTUP_FAILED
            if not lifespan.supported:
                self.state = None  # type: ignore[assignment]  # no lifespan: no "state" key in scopes
        server = await loop.create_server(lambda: Connection(self), sock=sock, backlog=self.limits.backlog)
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        ready()
        await self._exit.wait()
        # -- graceful shutdown --
        server.close()  # stop accepting
        for conn in list(self.connections):
            conn.shutdown()
        deadline = loop.time() + self.limits.graceful_timeout
        while self.tasks and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        if self.tasks:
            log.warning("cancelling %d request(s) still running after the grace period", len(self.tasks))
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.transport.close()
        if self.config.lifespan != "off":
            await lifespan.shutdown()
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


class Lifespan:
    """The ASGI lifespan protocol (lifespan spec 2.0): ``lifespan.startup`` before the first connection,
    ``lifespan.shutdown`` after the last.  The app runs as one long task that receives the two events."""

    def __init__(self, app: Any, state: dict[str, Any], mode: str) -> None:
        self.app = app
        self.state = state
        self.mode = mode
        self.supported = True
        self.failed: str | None = None
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.phase = "startup"
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.main())
        await self.messages.put({"type": "lifespan.startup"})
        await self.started.wait()

    async def shutdown(self) -> None:
        if not self.supported or self.failed is not None or self.task is None:
            return
        self.phase = "shutdown"
        await self.messages.put({"type": "lifespan.shutdown"})
        await self.stopped.wait()

    async def main(self) -> None:
        scope = {"type": "lifespan", "asgi": {**ASGI_VERSION, "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self.messages.get, self.send)
        except BaseException as exc:
            if self.phase == "startup" and not self.started.is_set() and self.mode == "auto":
                # Lifespan spec: "If an exception is raised when calling the application callable with a
                # lifespan.startup message or a scope with type lifespan, the server must continue but not send
                # any lifespan events."  A WSGI-minded or minimal app simply does not speak it.
                self.supported = False
                log.info(
                    "ASGI 'lifespan' protocol appears unsupported (%s: %s); continuing without it",
                    type(exc).__name__,
                    exc,
                )
            else:
                self.failed = self.failed or f"{type(exc).__name__}: {exc}"
                log.exception("exception in the lifespan %s", self.phase)
        finally:
            self.started.set()
            self.stopped.set()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        expected = {
            "startup": ("lifespan.startup.complete", "lifespan.startup.failed"),
            "shutdown": ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
        }[self.phase]
        if kind not in expected:
            raise ASGIProtocolError(
                f"Expected ASGI message {' or '.join(map(repr, expected))} during lifespan "
                f"{self.phase}, but got {kind!r}."
            )
        if kind.endswith(".failed"):
            self.failed = message.get("message") or "(no message)"
            log.error("lifespan %s failed: %s", self.phase, self.failed)
        if self.phase == "startup":
            self.started.set()
        else:
            self.stopped.set()


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
    """One client socket: the loop calls these methods as bytes arrive and leave."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.head = HeadReader(server.limits)
        self.conn: h11.Connection | None = None  # the h11 connection of the current cycle; None between requests
        self.cycle: RequestCycle | None = None
        self.websocket: WebSocketCycle | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.lingering = False
        self.half_closed = False  # the client sent EOF after a complete request: answer it, then close

    # -- asyncio.Protocol callbacks ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(self.transport)
        peer = transport.get_extra_info("peername")
        self.client = tuple(peer[:2]) if peer else None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio already sets TCP_NODELAY on TCP transports; said here because it matters: responses are
            # written whole, and Nagle would hold the last segment back waiting for a delayed ACK (~40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        if self.server.should_exit:
            self.transport.close()
            return
        self._set_timer(self.limits.keepalive_timeout, self._on_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._cancel_timer()
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
        if self.websocket is not None and self.websocket.session is not None:
            self.websocket.feed(data)
        elif self.lingering:
            pass  # closing after a refusal: discard what the client still sends (see _reject)
        elif self.conn is None:
            self._feed_head(data)
        else:
            self.conn.receive_data(data)  # body of the current request, or bytes after it that h11 keeps for us
            if self.conn.their_state is h11.DONE and self.cycle is not None and self.cycle.sender.state != "done":
                # A pipelined request arrived before our response went out: it waits in h11's buffer, and we stop
                # reading until the response is complete (RFC 9112 §9.3.2: responses go out in request order).
                self.flow.pause_reading()
                return
            self._drive()

    def eof_received(self) -> bool | None:
        """The client shut down its sending side.  If its request is complete it may still be waiting for the
        answer (``printf 'GET / ...' | nc -N`` does this): keep the transport open for writing, close after the
        response.  Otherwise (idle, or EOF in the middle of a body) there is nothing to answer: close."""
        if self.conn is None or self.cycle is None or self.lingering:
            return None
        if self.conn.their_state is h11.DONE and self.cycle.sender.state != "done":
            self.half_closed = True
            return True  # keep writing; _next_cycle closes
        self.conn.receive_data(b"")  # h11 turns EOF in the middle of a body into a RemoteProtocolError
        self._drive()
        return None

    # -- timers: header-read and keep-alive --------------------------------------------------------------------
    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self.timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_idle(self) -> None:  # Limits.keepalive_timeout: nobody sent anything
        self.transport.close()

    def _on_header_timeout(self) -> None:  # Limits.header_timeout: the head did not complete in time
        self._reject(Rejection(408, "request head not received in time", "header_timeout"))

    # -- shutting down ------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """The server is stopping: idle connections close now; busy ones after their response."""
        if self.websocket is not None:
            self.websocket.shutdown(self.server.close_code)
        elif self.cycle is None:
            self.transport.close()
        else:
            self.cycle.writer.keep_alive = False  # "Connection: close" on a response not yet started

    def _reject(self, rejection: Rejection) -> None:
        """Answer a refused request and close.  A *lingering* close (Apache's lingering_close): stop writing,
        keep discarding what the client sends for a moment, then close -- closing with unread data makes the
        kernel send RST, and the client may lose our answer with it."""
        log.info("%s rejected %d (%s: %s)", self.client, rejection.status, rejection.rule, rejection.reason)
        self.transport.write(
            rejection_response(rejection.status, rejection.reason, SERVER_HEADER, self.server.date.value())
        )
        self._linger()

    def _reject_after_response(self) -> None:
        """An error response went out through h11 (413, 400 found while reading the body): close the same way."""
        self._linger()

    def _linger(self) -> None:
        self._cancel_timer()
        self.lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # =============================================================================================================
    # Event loop over h11 events
    # =============================================================================================================

    def _feed_head(self, data: bytes) -> None:
        started = self.head.started
        result = self.head.feed(data)
        if result is None:
            if not started:  # the header-read timeout runs from the first byte of the head
                self._set_timer(self.limits.header_timeout, self._on_header_timeout)
            return
        self._cancel_timer()
        if isinstance(result, tuple):
            self._start_cycle(*result)
        else:
            self._reject(result)

    def _start_cycle(self, head: bytes, rest: bytes) -> None:
        conn = new_cycle(self.limits)
        conn.receive_data(head)
        if rest:
            conn.receive_data(rest)
        try:
            request = conn.next_event()
        except h11.RemoteProtocolError as exc:  # strict.py passed it, h11 still refused: answer h11's status
            self._reject(Rejection(exc.error_status_hint, str(exc), "h11"))
            return
        assert isinstance(request, h11.Request), request  # a complete head always yields a Request
        server, limits = self.server, self.limits
        if limits.max_concurrency and server.in_flight >= limits.max_concurrency:
            self._reject(Rejection(503, "server at its concurrency limit, retry later", "max_concurrency"))
            return
        self.conn = conn
        headers = list(request.headers)  # once: iterating h11's Headers object is slow, a list is not
        upgrade = next((value for name, value in headers if name == b"upgrade"), None)
        if upgrade is not None and is_websocket_upgrade(request):
            problem = handshake_problem(request)
            if problem is None:
                self.websocket = WebSocketCycle(self, conn, request, headers)
                self._run(self.websocket.run())
                return
            # Not a valid handshake: an ordinary error response, after which h11 forgets the upgrade.
            status, reason, _ = problem
            self._reject(Rejection(status, reason, "RFC 6455 §4.2.1"))
            return
        # A declared Content-Length over max_body_bytes never gets here: strict.check_head answered it 413
        # from the head, before a byte of the body was read (RFC 9110 §15.5.14).
        self.cycle = RequestCycle(self, conn, request, headers)
        self._run(self.cycle.run())
        self._drive()

    def _run(self, coro: Any) -> None:
        server = self.server
        server.in_flight += 1
        task = self.loop.create_task(coro)
        server.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.server.in_flight -= 1
        self.server.tasks.discard(task)

    def _drive(self) -> None:
        """Turn the h11 events of the current request's body into work for its cycle."""
        conn, cycle = self.conn, self.cycle
        if conn is None or cycle is None:
            return
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:  # a malformed chunk, or EOF in the middle of the body
                cycle.on_client_error(exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            kind = type(event)
            if kind is h11.Data:
                cycle.on_body(event.data)
            elif kind is h11.EndOfMessage:
                cycle.on_body_end()
                if cycle.sender.state == "done":  # the response was already complete: we were draining
                    self._next_cycle()
                    return
            elif kind is h11.ConnectionClosed:
                break
        if len(cycle.body) > HIGH_WATER:
            self.flow.pause_reading()  # the app is not reading its body fast enough: slow the client down

    def on_response_complete(self, cycle: RequestCycle) -> None:
        """The app sent its final body.  Next request, drain the rest of this one's body, or close."""
        conn = self.conn
        if conn is None or cycle is not self.cycle:
            return
        if conn.their_state is h11.SEND_BODY and not cycle.disconnected:
            if cycle.unanswered_continue:
                self.transport.close()  # RFC 9110 §10.1.1: the client may never send the body we did not ask for
                return
            # The app answered without reading the whole body: read and discard the rest (bounded by
            # max_body_bytes, see on_body) rather than close with unread data and risk an RST.
            self.flow.resume_reading()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        conn = self.conn
        if (
            conn is None
            or self.cycle is None
            or not reusable(conn, self.cycle.writer)
            or self.server.should_exit
            or self.half_closed
        ):
            self.transport.close()
            return
        leftover = conn.trailing_data[0]
        self.conn = self.cycle = None
        self.flow.resume_reading()
        self._set_timer(self.limits.keepalive_timeout, self._on_idle)
        if leftover:
            self._feed_head(leftover)


# =================================================================================================================
# Request cycle
# =================================================================================================================


class RequestCycle:
    """One HTTP request: the app's ``receive`` and ``send``, the body buffered between socket and app."""

    def __init__(
        self, connection: Connection, conn: h11.Connection, request: h11.Request, headers: list[tuple[bytes, bytes]]
    ) -> None:
        server = connection.server
        self.connection = connection
        self.transport = connection.transport
        self.flow = connection.flow
        self.conn = conn
        self.request = request
        self.limits = connection.limits
        self.scope = http_scope(
            request, server=server.server_address, client=connection.client, state=server.state, headers=headers
        )
        self.writer = ResponseWriter(
            request.method,
            request.http_version,
            headers,
            date=server.date,
            server_header=SERVER_HEADER,
            closing=server.should_exit,
        )
        self.sender = HTTPSend(self.writer)
        self.body: bytearray = bytearray()
        self.body_done = False
        self.body_delivered = False  # the final http.request (more_body False) went to the app
        self.body_received = 0
        self.body_error: Exception | None = None
        self.disconnected = False
        self.continue_sent = False
        self.expects_continue = conn.client_is_waiting_for_100_continue
        self.wakeup: asyncio.Event | None = None  # created only when receive() must wait
        self.started_at = time.perf_counter()

    @property
    def unanswered_continue(self) -> bool:
        return self.expects_continue and not self.continue_sent

    # -- from the connection ---------------------------------------------------------------------------------
    def on_body(self, data: bytes) -> None:
        self.body_received += len(data)
        if self.limits.max_body_bytes and self.body_received > self.limits.max_body_bytes:
            if self.sender.state == "done":
                self.transport.close()  # draining an unread body that is too large: give up
                return
            self.body_error = BodyTooLarge(f"request body over {self.limits.max_body_bytes} bytes")
            self.flow.pause_reading()
        elif self.sender.state != "done":
            self.body += data
        self._wake()

    def on_body_end(self) -> None:
        self.body_done = True
        self._wake()

    def on_client_error(self, exc: h11.RemoteProtocolError) -> None:
        self.body_error = exc
        self.transport.close() if self.sender.state == "done" else self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()

    # -- the app's receive and send ----------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        if self.expects_continue and not self.continue_sent and not self.body_done and not self.disconnected:
            # RFC 9110 §10.1.1: the client waits for "100 (Continue)" before sending the content.  Sent now that
            # the app asks for the body: an app that refuses the request first never makes the client upload it.
            self.continue_sent = True
            self.transport.write(CONTINUE)
        # Wait for something to say.  Once the whole body has been handed over, the only news left is the end:
        # ASGI HTTP spec, "Disconnect": sent "if receive is called after a response has been sent or after the
        # HTTP connection has been closed" -- so a long-polling app can wait here for its client to leave.
        while not (
            self.disconnected
            or self.body_error
            or self.sender.state == "done"
            or (not self.body_delivered and (self.body or self.body_done))
        ):
            if not self.body_delivered:
                self.flow.resume_reading()
            if self.wakeup is None:
                self.wakeup = asyncio.Event()
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.body_error is not None:
            raise self.body_error
        if self.disconnected or self.sender.state == "done" or self.body_delivered:
            return {"type": "http.disconnect"}
        body, self.body = bytes(self.body), bytearray()
        self.body_delivered = self.body_done
        if (
            self.flow.read_paused
            and self.connection.conn is not None
            and self.connection.conn.their_state is not h11.DONE
        ):
            self.flow.resume_reading()
        return {"type": "http.request", "body": body, "more_body": not self.body_done}

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            # ASGI spec 2.4: "If send() is called on a closed connection the server should raise a server-specific
            # subclass of OSError."  The app learns the client is gone and can stop producing.
            raise ClientDisconnected(f"client disconnected; {message.get('type')!r} not sent")
        data = self.sender.message(message)
        if data:
            self.transport.write(data)
            if self.flow.write_paused:  # the transport's buffer is above its high-water mark: wait for the client
                await self.flow.drain()
        if self.sender.state == "done":
            self._log()
            self.connection.on_response_complete(self)

    # -- the app call -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
        except ClientDisconnected as exc:
            log.debug("%s %s", self.connection.client, exc)
        except (BodyTooLarge, h11.RemoteProtocolError) as exc:  # the client's fault, found while reading the body
            status = 413 if isinstance(exc, BodyTooLarge) else getattr(exc, "error_status_hint", 400)
            self.fail(status, str(exc))
        except ResponseError as exc:  # e.g. more body than the declared Content-Length: the response is broken
            log.error("%s %s: %s", self.scope["method"], self.scope["raw_path"].decode("latin-1"), exc)
            self.fail(500, "Internal Server Error")
        except Exception:
            # The traceback goes to the log, never to the client (CONTRACT.md #12).
            log.exception("application error on %s %s", self.scope["method"], self.scope["raw_path"].decode("latin-1"))
            self.fail(500, "Internal Server Error")
        else:
            if self.sender.state != "done" and not self.disconnected:
                log.error(
                    "ASGI callable returned without %s the response (%s %s)",
                    "starting" if self.sender.state == "start" else "completing",
                    self.scope["method"],
                    self.scope["raw_path"].decode("latin-1"),
                )
                self.fail(500, "Internal Server Error")

    def fail(self, status: int, message: str) -> None:
        if self.disconnected or self.writer.finished:
            return  # the response is complete (Starlette's ServerErrorMiddleware re-raises after sending its 500)
        if self.sender.started:
            # Too late for an error status: abort (no terminating chunk) so the client knows the response is cut.
            self.transport.close()
            return
        data = error_response(self.writer, status, message, close=status != 500)
        self.sender.state = "done"
        self.transport.write(data)
        self._log()
        if status == 500:
            self.connection.on_response_complete(self)
        else:
            self.connection._reject_after_response()

    def _log(self) -> None:
        if self.connection.server.config.access_log:
            request = self.request
            access_log.info(
                access_line(
                    self.connection.client,
                    request.method,
                    request.target,
                    request.http_version,
                    self.writer.status,
                    self.writer.body_bytes,
                    time.perf_counter() - self.started_at,
                )
            )


class WebSocketCycle:
    """One WebSocket: the ASGI conversation before the handshake (``websocket.connect``, then ``accept`` or
    ``close``), and the core's wsproto session after it."""

    def __init__(
        self, connection: Connection, conn: h11.Connection, request: h11.Request, headers: list[tuple[bytes, bytes]]
    ) -> None:
        server = connection.server
        self.connection = connection
        self.transport = connection.transport
        self.conn = conn
        self.request = request
        self.scope = websocket_scope(
            request, server=server.server_address, client=connection.client, state=server.state, headers=headers
        )
        self.session: WebSocketSession | None = None
        self.messages: deque[dict[str, Any]] = deque([{"type": "websocket.connect"}])
        self.wakeup = asyncio.Event()
        self.closed: dict[str, Any] | None = None  # the websocket.disconnect message, once the socket is gone
        self.handshake_done = False
        connection.flow.pause_reading()  # until accepted, frames have nowhere to go

    # -- from the connection ---------------------------------------------------------------------------------
    def feed(self, data: bytes | None) -> None:
        self._apply(self.session.receive_data(data))

    def _apply(self, outcome: Outcome) -> None:
        if outcome.output and not self.transport.is_closing():
            self.transport.write(outcome.output)
        for message in outcome.messages:
            self._deliver(message)
        if outcome.close:
            self.transport.close()  # RFC 6455 §7.1.1: the server closes the TCP connection first
        if len(self.messages) > WS_QUEUE_HIGH:
            self.connection.flow.pause_reading()

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.disconnect":
            self.closed = message
        else:
            self.messages.append(message)
        self.wakeup.set()

    def on_disconnect(self) -> None:
        if self.closed is None:
            if self.session is not None:
                self.feed(None)  # wsproto reports 1006 (abnormal closure: no close frame)
            else:
                self.closed = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self.wakeup.set()

    def shutdown(self, code: int) -> None:
        if self.session is None:
            self.transport.close()
            return
        data = self.session.shutdown(code)
        if data:
            self.transport.write(data)
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": "server shutting down"})
        self.connection.loop.call_later(1.0, self.transport.close)  # a moment for the client's close frame

    # -- the app's receive and send ----------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        while not self.messages and self.closed is None:
            if self.session is not None and self.session.failure_pending:
                self._apply(self.session.fail_pending())  # a protocol error, in its place (core/websocket.py)
                continue
            self.wakeup.clear()
            if self.session is not None:
                self.connection.flow.resume_reading()
            await self.wakeup.wait()
        if self.messages:
            return self.messages.popleft()
        return self.closed  # type: ignore[return-value]

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if self.session is None:  # before the handshake
            if self.closed is not None:
                raise ClientDisconnected(f"client disconnected before the handshake; {kind!r} not sent")
            if kind == "websocket.accept":
                self.transport.write(accept_response(self.request, message))
                self.handshake_done = True
                # h11 has switched protocols; whatever it received after the request head is the first frames.
                self.session = WebSocketSession(self.connection.limits.max_ws_message, self.conn.trailing_data[0])
                self._log(101)
                self.feed(b"")
                self.connection.flow.resume_reading()
            elif kind == "websocket.close":
                # ASGI WebSocket spec, "Close": "If this is sent before the socket is accepted, the server must close
                # the connection with a HTTP 403 error code (Forbidden), and not complete the WebSocket handshake."
                self._deny(403, "Forbidden")
            else:
                raise ASGIProtocolError(
                    f"Expected ASGI message 'websocket.accept' or 'websocket.close', but got {kind!r}."
                )
            return
        data = self.session.send(message)  # raises once closed (ASGI 2.4), with who closed it
        if data and not self.transport.is_closing():
            self.transport.write(data)
            if self.connection.flow.write_paused:  # a client not reading slows the app down, not our memory
                await self.connection.flow.drain()
        if kind == "websocket.close":
            # Our close frame is out; the client answers with its own (handled in feed, which closes TCP).  If it
            # never does, close anyway after the keep-alive timeout.
            self.connection.loop.call_later(self.connection.limits.keepalive_timeout, self.transport.close)

    def _deny(self, status: int, message: str) -> None:
        self.handshake_done = True
        writer = ResponseWriter(b"GET", b"1.1", (), date=self.connection.server.date, server_header=SERVER_HEADER)
        self.transport.write(error_response(writer, status, message, close=True))
        self._log(status)
        self.transport.close()

    async def run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
        except ClientDisconnected as exc:
            log.debug("%s %s", self.connection.client, exc)
        except Exception:
            log.exception("application error in WebSocket %s", self.scope["raw_path"].decode("latin-1"))
            if not self.handshake_done:
                self._deny(500, "Internal Server Error")
            elif self.session is not None and self.closed is None:
                # RFC 6455 §7.4.1, 1011: "a server is terminating the connection because it encountered an
                # unexpected condition that prevented it from fulfilling the request."
                self._close_after_app(1011)
        else:
            if not self.handshake_done:
                log.error("ASGI callable returned without accepting or closing the WebSocket")
                self._deny(500, "Internal Server Error")
            elif self.session is not None and self.session.closed_by is None:
                self._close_after_app(1000)  # the app is done with it: a normal closure

    def _close_after_app(self, code: int) -> None:
        try:
            data = self.session.send({"type": "websocket.close", "code": code})
        except (ClientDisconnected, ASGIProtocolError):
            return
        if not self.transport.is_closing():
            self.transport.write(data)
        self.connection.loop.call_later(self.connection.limits.keepalive_timeout, self.transport.close)

    def _log(self, status: int) -> None:
        if self.connection.server.config.access_log:
            request = self.request
            access_log.info(
                access_line(self.connection.client, b"WEBSOCKET", request.target, request.http_version, status, 0, 0.0)
            )


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
) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the exit code.  Prints the serving line once listening (and
    after the lifespan startup)."""
    config = Config(app, host, port, workers, limits or Limits(), access_log, lifespan)
    sock = bind(host, port, config.limits.backlog)

    def child(ready: Callable[[], None]) -> int:
        return asyncio.run(Server(config).serve(sock, ready))

    return run_workers(workers, sock, child)


@contextmanager
def running(app: Any, *, limits: Limits | None = None, access_log: bool = False, lifespan: str = "auto"):  # type: ignore[no-untyped-def]
    """For tests: serve ``app`` on a free loopback port in a background thread; yields the base URL."""
    config = Config(app, "127.0.0.1", 0, 1, limits or Limits(), access_log, lifespan)
    sock = bind("127.0.0.1", 0, config.limits.backlog)
    server = Server(config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sock, started.set)), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield url_of(sock)
    finally:
        loop.call_soon_threadsafe(server.stop)
        thread.join(10)
        loop.close()


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m servers.scratch_asgi", "scratch-asgi: an asyncio ASGI server on h11", threads=False)
    p.add_argument(
        "--lifespan",
        default="auto",
        choices=["auto", "on", "off"],
        help="run the ASGI lifespan protocol (auto: if the app supports it)",
    )
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    try:
        app = load_app(args.app)
        return serve(
            app,
            args.host,
            args.port,
            workers=args.workers,
            limits=limits_from(args),
            access_log=args.access_log,
            lifespan=args.lifespan,
        )
    except StartupFailed as exc:
        print(f"layercake: {exc}", file=sys.stderr)
        return STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
