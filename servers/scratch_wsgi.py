"""scratch-wsgi: a threaded WSGI server, written to be read.

Theory of operation
-------------------
A WSGI application is a blocking function: ``app(environ, start_response)`` runs on a thread until the response
is done.  So a WSGI server's concurrency model is *threads*, and its one big design question is: which thread
waits for what?

* **One selector thread** (the main thread) owns every socket that is not in the middle of a request: the
  listening socket, connections sitting idle between keep-alive requests, connections whose request head is still
  arriving, connections discarding an unread body or lingering after a refusal.  It reads without blocking and
  hands a connection to the pool only once a *complete*, checked request head is in hand.  This is the slow-client
  defence: a client that trickles its headers (slowloris) costs a buffer and a deadline, never a worker thread.
* **A bounded pool of worker threads** (``--threads``, default 8) runs the request cycle: it builds the environ,
  lets the app read the body (``wsgi.input`` reads the socket on demand, waiting up to ``body_timeout``), sends
  the response (a client that reads slowly gets ``header_timeout`` in all for each write, a total deadline as
  ``socket.sendall``'s timeout is) and calls ``close()``.  If the client pipelined another complete request, the
  same thread serves it next; otherwise the connection goes back to the selector thread.

This is the model of gunicorn's ``gthread`` worker, and of waitress (which goes further: its I/O thread also
buffers whole responses).  The alternative, a thread per connection (werkzeug's dev server, the standard library's
``ThreadingHTTPServer``), is simpler but lets idle keep-alive connections and slow clients pin threads.

Every protocol decision -- what a head may look like, 100 Continue, the body limit, keep-alive, draining an unread
body, which timeout runs when, how a refusal ends -- is the sans-I/O :class:`~servers.core.connection.ServerConnection`
(``servers/core/connection.py``); this file only moves its bytes and reacts to its events.  What is left here is
the concurrency model: who owns a socket when, and how the two kinds of thread hand it over.  A connection is owned
by exactly one thread at a time: the selector thread gives it away by unregistering it and submitting it to the
pool; a worker gives it back by appending it to ``returned`` and, unless a wake-up is already on its way, writing
a byte to a socketpair that wakes the selector (selectors are not thread-safe, so only the selector thread touches
the selector).

Overload: when ``Limits.max_concurrency`` requests are already in the pool, a new complete request is refused by the
selector thread itself with the connection's 503 (uvicorn's ``--limit-concurrency``).

Shutdown (SIGTERM or SIGINT): stop accepting, close connections that owe nothing, let in-flight requests finish for
up to ``Limits.graceful_timeout`` seconds (their responses carry ``Connection: close``), then exit 0.

The sections below are in the same order as in ``scratch_asgi.py`` -- accept loop, connection, event loop over the
connection's events, request cycle -- so that ``diff servers/scratch_wsgi.py servers/scratch_asgi.py`` shows what
changes between a threaded and an event-loop server, and nothing else.

Spec: PEP 3333 (through ``servers/core/wsgi.py``); RFC 9112 and RFC 9110 through the connection.  Not supported,
deliberately: TLS (put a proxy in front), HTTP/2, ``wsgi.file_wrapper``.
"""

from __future__ import annotations

import collections
import logging
import queue
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from servers.core.connection import OVERLOADED, S, ServerConnection
from servers.core.events import CLOSED, NEED_DATA, BodyError, Data, EndOfMessage, Event, Rejected, RequestHead
from servers.core.http import ClientDisconnected, DateHeader, RequestBodyError, peer
from servers.core.limits import Limits
from servers.core.wsgi import StartResponse, WSGIInput, build_environ, iterate_body
from servers.scratch_common import (
    bind,
    in_thread,
    limits_from,
    log_access,
    parser,
    run_main,
    run_workers,
)

NAME = "scratch-wsgi"
SERVER_HEADER = NAME.encode()
RECV_SIZE = 65536  # one read; a typical head is a few hundred bytes, a body comes in pieces of this size

log = logging.getLogger("layercake.server")


@dataclass
class Config:
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    access_log: bool = True
    http: str = "h11"  # the request parser (servers/core/parsers.py)


# =================================================================================================================
# Accept loop
# =================================================================================================================


class Server:
    """The selector thread and the pool.  ``serve(sock, ready)`` runs until ``stop()`` (or a signal)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits = config.limits
        self.app = config.app
        self.date = DateHeader()
        self.selector = selectors.DefaultSelector()
        self.waiting: dict[socket.socket, Connection] = {}  # connections the selector thread owns
        self.returned: collections.deque[Connection] = collections.deque()  # handed back by workers
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_sent = False  # a wake-up byte is on its way and ``returned`` not yet read (see give_back)
        self.jobs: queue.SimpleQueue[tuple[Connection, RequestHead] | None] = queue.SimpleQueue()
        self.in_flight = 0  # requests handed to the pool and not finished (guarded by _lock)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when in_flight drops to 0
        self.should_exit = False
        self.force_exit = False
        self.next_deadline = float("inf")  # the earliest deadline among waiting connections (may be stale: early)
        self.listener: socket.socket | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def serve(self, sock: socket.socket, ready: Callable[[], None] = lambda: None) -> None:
        self.listener = sock
        sock.setblocking(False)
        self.server_address = sock.getsockname()[:2]
        for i in range(self.config.threads):
            threading.Thread(target=self._worker, name=f"{NAME}-worker-{i}", daemon=True).start()
        self.selector.register(sock, selectors.EVENT_READ, None)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        ready()
        try:
            while not self.should_exit:
                self._tick()
        finally:
            self._shutdown()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal: stop waiting for in-flight requests
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.stop()

    def stop(self) -> None:
        """Ask the server to shut down gracefully (thread-safe, signal-safe)."""
        self.should_exit = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # the buffer is full: the selector will wake anyway

    def _tick(self) -> None:
        timeout = max(0.0, min(self.next_deadline - time.monotonic(), 1.0))
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.listener:
                self._accept()
            elif key.fileobj is self._wake_r:
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
            else:
                self._on_readable(key.data)
        self._wake_sent = False  # before reading ``returned``: a connection appended after this sends its own byte
        while self.returned:
            connection = self.returned.popleft()
            self._act(connection, connection.pending)
        if time.monotonic() >= self.next_deadline:
            self._expire()

    def _accept(self) -> None:
        # Accept what is queued, but a bounded number per tick so that a flood cannot starve existing clients
        # (asyncio's selector loop does the same, up to create_server's backlog -- 100 by default -- per wakeup).
        for _ in range(64):
            try:
                sock, client = self.listener.accept()  # type: ignore[union-attr]  # set by serve() before the loop
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: log and keep serving the connections we have
                log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            # Responses are written whole; Nagle's algorithm would only delay the last partial segment while
            # waiting for an ACK that delayed-ACK holds back (~40 ms).  Every production server sets this.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._watch(Connection(self, sock, client[:2]))

    def _shutdown(self) -> None:
        if self.listener is not None:  # stop accepting
            self.selector.unregister(self.listener)
            self.listener.close()
        for connection in list(self.waiting.values()):
            if connection.conn.shutdown():  # idle, or half a head: nothing is owed to it
                self._forget(connection)
                connection.close()
        deadline = time.monotonic() + self.limits.graceful_timeout
        with self._idle:
            while self.in_flight and not self.force_exit and time.monotonic() < deadline:
                self._idle.wait(0.1)
            if self.in_flight:
                log.warning("exiting with %d request(s) still in flight after the grace period", self.in_flight)
        for _ in range(self.config.threads):
            self.jobs.put(None)
        for connection in list(self.waiting.values()):  # draining or lingering: the process is ending anyway
            connection.close()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- connections owned by the selector thread --------------------------------------------------------------
    def _watch(self, connection: Connection) -> None:
        """Wait for a connection's next bytes (new, back from a worker, or still waiting) until its deadline."""
        if self.should_exit and connection.conn.shutdown():
            self._forget(connection)
            connection.close()
            return
        deadline = connection.conn.deadline
        if deadline is not None:
            self.next_deadline = min(self.next_deadline, deadline)
        if connection.sock not in self.waiting:
            self.waiting[connection.sock] = connection
            self.selector.register(connection.sock, selectors.EVENT_READ, connection)

    def _forget(self, connection: Connection) -> None:
        if self.waiting.pop(connection.sock, None) is not None:
            self.selector.unregister(connection.sock)

    def _expire(self) -> None:
        """Act on the connections whose deadline passed: a slow head gets its 408, an idle one is closed ..."""
        now = time.monotonic()
        self.next_deadline = float("inf")
        for connection in list(self.waiting.values()):
            deadline = connection.conn.deadline
            if deadline is not None and deadline <= now:
                self._act(connection, connection.conn.handle_timeout())
            elif deadline is not None:
                self.next_deadline = min(self.next_deadline, deadline)

    def _on_readable(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the peer: as good as closed
        connection.conn.receive_data(data)
        self._act(connection, connection.conn.next_event())

    def _act(self, connection: Connection, event: Event) -> None:
        """The selector thread's answer to each event."""
        conn = connection.conn
        while True:
            if type(event) is RequestHead:
                self._forget(connection)
                return self._dispatch(connection, event)
            if type(event) is Rejected:
                connection.reject(event)
            elif event is CLOSED:
                self._forget(connection)
                connection.close()
                return
            else:  # NEED_DATA: idle, a head or a body being drained still arriving, or lingering
                self._watch(connection)
                return
            event = conn.next_event()

    def _dispatch(self, connection: Connection, head: RequestHead) -> None:
        """A complete, checked head: give the connection to the pool, or shed load with the connection's 503."""
        limit = self.limits.max_concurrency
        with self._lock:
            overloaded = bool(limit) and self.in_flight >= limit
            if not overloaded:
                self.in_flight += 1
        if overloaded:
            self._act(connection, connection.conn.refuse(OVERLOADED))
            return
        self.jobs.put((connection, head))

    def _done(self) -> None:
        with self._idle:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.notify_all()

    def give_back(self, connection: Connection) -> None:
        """A worker hands a connection back to the selector thread (from any thread).

        One wake-up byte serves every connection handed back before the selector next reads ``returned``: under
        load several workers finish within one selector iteration, and a byte each was a ``send`` on their side
        and a ``recv`` on the selector's per request (speed, issue 12).  The flag is safe without a lock: the
        selector clears it *before* it reads ``returned``, so a worker that sees it set appended in time to be read,
        and one that sees it clear sends a byte (at worst one wake-up too many, which finds nothing to do)."""
        self.returned.append(connection)
        if not self._wake_sent:
            self._wake_sent = True
            self._wake()

    # -- worker threads ------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while (job := self.jobs.get()) is not None:
            connection, head = job
            try:
                connection.serve(head)
            except Exception:  # a bug in one connection never stops the server
                log.exception("unexpected error serving %s", connection.client)
                connection.close()


# =================================================================================================================
# Connection
# =================================================================================================================


class Connection:
    """One client socket and its :class:`ServerConnection`.  Owned by the selector thread or by one worker."""

    def __init__(self, server: Server, sock: socket.socket, client: tuple[str, int]) -> None:
        self.server = server
        self.sock = sock
        self.client = client
        self.conn = ServerConnection(
            server.limits, server_header=SERVER_HEADER, date=server.date, parser=server.config.http
        )
        self.pending: Event = NEED_DATA  # what a worker learned last, for the selector thread to act on

    def reject(self, rejection: Rejected) -> None:
        """Send a refusal and start the lingering close the connection asked for: stop writing (the client sees EOF
        after our answer) but keep reading and discarding until its deadline.  The answer is a few hundred bytes
        into an empty socket buffer, so one non-blocking ``send`` does it, even from the selector thread."""
        log.info("%s rejected %d (%s: %s)", peer(self.client), rejection.status, rejection.rule, rejection.reason)
        try:
            self.sock.send(rejection.data)
        except OSError:
            pass
        self.linger()

    def linger(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def serve(self, head: RequestHead) -> None:
        """Serve requests on a worker thread while complete ones are at hand (pipelining, RFC 9112 §9.3.2: "A server
        MAY process a sequence of pipelined requests in parallel if they all have safe methods", which we do not:
        strictly in order, so responses come out in request order); then give the connection back."""
        server, conn = self.server, self.conn
        while True:
            try:
                RequestCycle(self, head).run()
            finally:
                server._done()
            if conn.state is S.CLOSED or server.should_exit and conn.shutdown():
                self.close()
                return
            if conn.state is S.LINGER:
                self.linger()
            event = conn.next_event()
            if type(event) is not RequestHead:
                break
            with server._lock:  # a pipelined request is already complete: serve it on this thread
                server.in_flight += 1
            head = event
        self.pending = event
        server.give_back(self)

    # =============================================================================================================
    # Event loop over the connection's events
    # =============================================================================================================

    def pull(self) -> bytes:
        """The next piece of request body, ``b""`` at its end: what ``wsgi.input`` reads from, on a worker thread.
        The socket is read only here, when the app asks -- which is when a 100 Continue goes out."""
        conn, sock = self.conn, self.sock
        while True:
            event = conn.next_event()
            if type(event) is Data:
                return event.data
            if type(event) is EndOfMessage:
                return b""
            if type(event) is BodyError:
                raise RequestBodyError(event.status, event.reason)
            if event is not NEED_DATA:
                raise ClientDisconnected(f"connection ended while the app read the body ({event!r})")
            interim = conn.want_body()
            if interim:
                self.transmit(interim)
            deadline = conn.deadline  # Limits.body_timeout, restarted by each piece
            sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                conn.handle_timeout()  # the body timeout: the next event is its BodyError
                continue
            except OSError as exc:
                raise ClientDisconnected(f"client went away while sending the body: {exc}") from exc
            finally:
                sock.setblocking(False)  # the socket's usual mode (see transmit)
            conn.receive_data(data)

    def transmit(self, data: bytes) -> None:
        """Send all of ``data``, within ``header_timeout`` in all for a client that reads slowly.

        The socket stays non-blocking, as the selector thread needs it, and the first ``send`` is tried as it is:
        a usual response fits the kernel's socket buffer whole.  Only the rest of a response that does not fit is
        sent in timeout mode.  Switching modes is an ``ioctl`` each way, and a socket with a timeout polls before
        every send: three system calls per request spared (speed, issue 12)."""
        sock = self.sock
        try:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                sock.settimeout(self.server.limits.header_timeout)
                try:
                    sock.sendall(memoryview(data)[sent:])
                finally:
                    sock.setblocking(False)
        except OSError as exc:
            raise ClientDisconnected(f"client went away while we were sending: {exc}") from exc


# =================================================================================================================
# Request cycle
# =================================================================================================================


class RequestCycle:
    """One ``app(environ, start_response)`` call on a worker thread, and its outcome."""

    def __init__(self, connection: Connection, head: RequestHead) -> None:
        self.connection = connection
        self.conn = connection.conn
        self.head = head
        self.server = connection.server

    def run(self) -> None:
        head, connection, server = self.head, self.connection, self.server
        started_at = time.perf_counter()
        writer = self.conn.writer
        assert writer is not None
        start = StartResponse(writer, connection.transmit)
        environ = build_environ(
            head,
            server=server.server_address,
            client=connection.client,
            wsgi_input=WSGIInput(connection.pull),
            multiprocess=server.config.workers > 1,
        )
        result = None
        try:
            result = server.app(environ, start)
            iterate_body(result, start)
        except ClientDisconnected as exc:
            log.debug("%s %s", peer(connection.client), exc)
            self.conn.broken()
        except RequestBodyError as exc:  # the client's fault, found while the app read the body: 413, 400, 408
            self.fail(start, exc.status, exc.reason)
        except Exception:
            # PEP 3333 leaves error handling to the server.  The traceback goes to the log, never to the client
            # (CONTRACT.md #12); the client gets a generic 500 if nothing was sent yet.
            log.exception("application error on %s %s", head.method.decode(), head.target.decode("latin-1"))
            self.fail(start, 500, "Internal Server Error")
        finally:
            if result is not None and hasattr(result, "close"):
                # PEP 3333: "If the iterable returned by the application has a close() method, the server or
                # gateway must call that method upon completion of the current request, whether the request was
                # completed normally, or terminated early due to an application error during iteration or an
                # early disconnect of the browser."
                try:
                    result.close()
                except Exception:
                    log.exception("error in the response iterable's close()")
        if not writer.finished and self.conn.state is not S.CLOSED:
            self.conn.abort()  # an app error after the head went out: cutting the connection is all that is left
        if server.config.access_log:
            log_access(connection.client, head, writer, started_at)

    def fail(self, start: StartResponse, status: int, message: str) -> None:
        if start.headers_sent:
            return  # too late for an error status: run() cuts the connection if the response is not complete
        try:
            self.connection.transmit(self.conn.send_error(status, message))
        except ClientDisconnected:
            self.conn.broken()


# =================================================================================================================
# Entry points
# =================================================================================================================


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    threads: int = 8,
    workers: int = 1,
    limits: Limits | None = None,
    access_log: bool = True,
    http: str = "h11",
) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the exit code.  Prints the serving line once listening."""
    config = Config(app, host, port, threads, workers, limits or Limits(), access_log, http)
    sock = bind(host, port, config.limits.backlog)

    def child(ready: Callable[[], None]) -> int:
        Server(config).serve(sock, ready)
        return 0

    return run_workers(workers, sock, child)


@contextmanager
def running(
    app: Any, *, threads: int = 8, limits: Limits | None = None, access_log: bool = False, http: str = "h11"
) -> Iterator[str]:
    """For tests: serve ``app`` on a free loopback port in a background thread; yields the base URL."""
    config = Config(app, "127.0.0.1", 0, threads, 1, limits or Limits(), access_log, http)
    sock = bind("127.0.0.1", 0, config.limits.backlog)
    server = Server(config)
    with in_thread(sock, lambda ready: server.serve(sock, ready), server.stop) as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m servers.scratch_wsgi", "scratch-wsgi: a threaded WSGI server", threads=True)
    return run_main(
        p,
        argv,
        lambda app, args: serve(
            app,
            args.host,
            args.port,
            threads=args.threads,
            workers=args.workers,
            limits=limits_from(args),
            access_log=args.access_log,
            http=args.http,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
