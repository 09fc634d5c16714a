"""scratch-wsgi: a threaded WSGI server on h11, written to be read.

Theory of operation
-------------------
A WSGI application is a blocking function: ``app(environ, start_response)`` runs on a thread until the response
is done.  So a WSGI server's concurrency model is *threads*, and its one big design question is: which thread
waits for what?

* **One selector thread** (the main thread) owns every socket that is not in the middle of a request: the
  listening socket, connections sitting idle between keep-alive requests, and connections whose request head is
  still arriving.  It reads heads without blocking and hands a connection to the pool only once a *complete*
  head is in hand and passed the strict checks.  This is the slow-client defence: a client that trickles its
  headers (slowloris) costs a buffer and a timer, never a worker thread, and the header-read timeout
  (``Limits.header_timeout``) and the idle keep-alive timeout (``Limits.keepalive_timeout``) are enforced here.
* **A bounded pool of worker threads** (``--threads``, default 8) runs the request cycle with the socket in
  blocking mode: it feeds the head to a fresh h11 connection, builds the environ, lets the app read the body
  (``wsgi.input`` reads the socket on demand, sending ``100 Continue`` first if the client asked for it), sends
  the response and calls ``close()``.  If the client pipelined another complete request, the same thread serves
  it next; otherwise the connection goes back to the selector thread.

This is the model of gunicorn's ``gthread`` worker, and of waitress (which goes further: its I/O thread also
buffers whole responses).  The alternative, a thread per connection (werkzeug's dev server, the standard
library's ``ThreadingHTTPServer``), is simpler but lets idle keep-alive connections and slow clients pin threads.

Between the two kinds of thread, a connection is owned by exactly one at a time: the selector thread gives it
away by unregistering it and submitting it to the pool; a worker gives it back by appending it to
``returned`` and writing a byte to a socketpair that wakes the selector (selectors are not thread-safe, so only
the selector thread touches the selector).

Overload: when ``Limits.max_concurrency`` requests are already in the pool, a new complete request is answered
``503`` with ``Connection: close`` by the selector thread itself (uvicorn's ``--limit-concurrency``).  The
listen backlog is ``Limits.backlog``.

Shutdown (SIGTERM or SIGINT): stop accepting, close idle connections and those still sending a head, let
in-flight requests finish for up to ``Limits.graceful_timeout`` seconds (their responses carry
``Connection: close``), then exit 0.

The sections below are in the same order as in ``scratch_asgi.py`` -- accept loop, connection, event loop over
h11 events, request cycle -- so that ``diff servers/scratch_wsgi.py servers/scratch_asgi.py`` shows what changes
between a threaded and an event-loop server.  HTTP framing, the environ and the start_response rules are in the
sans-I/O core (``servers/core/``); this file only moves bytes.

Spec: PEP 3333; RFC 9112 (message syntax, persistence §9.3, pipelining §9.3.2); RFC 9110 (Expect §10.1.1, Date
§6.6.1).  Not supported, deliberately: TLS (put a proxy in front), HTTP/2, ``wsgi.file_wrapper``.
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
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import h11

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
from servers.core.writer import CONTINUE, ResponseWriter, error_response
from servers.core.wsgi import StartResponse, WSGIInput, build_environ, iterate_body
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

NAME = "scratch-wsgi"
SERVER_HEADER = NAME.encode()
RECV_SIZE = 65536  # one read; a typical head is a few hundred bytes, a body comes in pieces of this size
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
    threads: int = 8
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    access_log: bool = True


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
        self.jobs: queue.SimpleQueue[tuple[Connection, bytes, bytes] | None] = queue.SimpleQueue()
        self.in_flight = 0  # requests handed to the pool and not finished (guarded by _lock)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when in_flight drops to 0
        self.should_exit = False
        self.force_exit = False
        self.next_deadline = float("inf")  # earliest timeout among waiting connections
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
        except (BlockingIOError, OSError):
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
        while self.returned:
            self._watch(self.returned.popleft())
        if time.monotonic() >= self.next_deadline:
            self._expire()

    def _accept(self) -> None:
        # Accept what is queued, but a bounded number per tick so that a flood cannot starve existing clients
        # (asyncio's selector loop does the same, up to create_server's backlog -- 100 by default -- per wakeup).
        for _ in range(64):
            try:
                sock, client = self.listener.accept()
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
        for conn in list(self.waiting.values()):  # idle keep-alive and half-sent heads: nothing owed to them
            self._forget(conn)
            conn.close()
        deadline = time.monotonic() + self.limits.graceful_timeout
        with self._idle:
            while self.in_flight and not self.force_exit and time.monotonic() < deadline:
                self._idle.wait(0.1)
            if self.in_flight:
                log.warning("exiting with %d request(s) still in flight after the grace period", self.in_flight)
        for _ in range(self.config.threads):
            self.jobs.put(None)
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- connections owned by the selector thread --------------------------------------------------------------
    def _watch(self, conn: Connection) -> None:
        """Take a connection (new, or back from a worker) and wait for its next request head."""
        if self.should_exit:
            conn.close()
            return
        if conn.lingering:
            timeout = LINGER_SECONDS
        elif conn.head.started:
            timeout = self.limits.header_timeout
        else:
            timeout = self.limits.keepalive_timeout
        conn.deadline = time.monotonic() + timeout
        self.next_deadline = min(self.next_deadline, conn.deadline)
        self.waiting[conn.sock] = conn
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _forget(self, conn: Connection) -> None:
        del self.waiting[conn.sock]
        self.selector.unregister(conn.sock)

    def _expire(self) -> None:
        """Close connections past their deadline: idle too long (keep-alive) or too slow sending a head."""
        now = time.monotonic()
        self.next_deadline = float("inf")
        for conn in list(self.waiting.values()):
            if conn.deadline <= now:
                self._forget(conn)
                if conn.head.started and not conn.lingering:  # RFC 9110 §15.5.9: 408 says we gave up waiting
                    conn.send_rejection(Rejection(408, "request head not received in time", "header_timeout"))
                conn.close()
            else:
                self.next_deadline = min(self.next_deadline, conn.deadline)

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) an idle connection
            self._forget(conn)
            conn.close()
            return
        if conn.lingering:
            return  # after a refusal: discard until the client closes or the linger deadline passes
        was_started = conn.head.started
        result = conn.head.feed(data)
        if result is None:
            if not was_started:  # the header-read timeout runs from the first byte of the head
                conn.deadline = time.monotonic() + self.limits.header_timeout
                self.next_deadline = min(self.next_deadline, conn.deadline)
            return
        self._forget(conn)
        if isinstance(result, tuple):
            self._dispatch(conn, *result)
        else:
            conn.send_rejection(result)
            self._watch(conn)  # lingering now: see Connection.send_rejection

    def _dispatch(self, conn: Connection, head: bytes, rest: bytes) -> None:
        """A complete, checked head: give the connection to the pool, or shed load with a 503."""
        limit = self.limits.max_concurrency
        with self._lock:
            overloaded = bool(limit) and self.in_flight >= limit
            if not overloaded:
                self.in_flight += 1
        if overloaded:
            conn.send_rejection(Rejection(503, "server at its concurrency limit, retry later", "max_concurrency"))
            self._watch(conn)
            return
        self.jobs.put((conn, head, rest))

    def _done(self) -> None:
        with self._idle:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.notify_all()

    # -- worker threads ------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while (job := self.jobs.get()) is not None:
            conn, head, rest = job
            try:
                conn.serve(head, rest)
            except Exception:  # a bug in one connection never stops the server
                log.exception("unexpected error serving %s", conn.client)
                conn.close()


# =================================================================================================================
# Connection
# =================================================================================================================


class Connection:
    """One client socket.  Owned either by the selector thread (waiting for a head) or by one worker."""

    def __init__(self, server: Server, sock: socket.socket, client: tuple[str, int]) -> None:
        self.server = server
        self.sock = sock
        self.client = client
        self.head = HeadReader(server.limits)
        self.deadline = 0.0
        self.lingering = False

    def send_rejection(self, rejection: Rejection) -> None:
        """Answer a refused request, log the rule it broke, and start a lingering close.

        The answer is a few hundred bytes into an empty socket buffer, so one non-blocking ``send`` does it, even
        from the selector thread.  Then the *lingering close* (Apache's lingering_close): we stop writing
        (``shutdown(SHUT_WR)``, the client sees EOF after our answer) but keep reading and discarding for up to
        ``LINGER_SECONDS``.  Closing at once with unread request bytes in the kernel buffer would make it send RST,
        and a client still uploading may then lose our answer before reading it.  The caller hands the connection
        to the selector thread, which does the discarding."""
        log.info("%s:%d rejected %d (%s: %s)", *self.client, rejection.status, rejection.rule, rejection.reason)
        try:
            self.sock.send(
                rejection_response(rejection.status, rejection.reason, SERVER_HEADER, self.server.date.value())
            )
        except OSError:
            pass
        self.begin_linger()

    def begin_linger(self) -> None:
        self.lingering = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def serve(self, head: bytes, rest: bytes) -> None:
        """Serve requests on a worker thread while complete ones are at hand (pipelining, RFC 9112 §9.3.2: "A server
        MAY process a sequence of pipelined requests in parallel if they all have safe methods", which we do not:
        strictly in order, so responses come out in request order); then give the connection back."""
        server = self.server
        self.sock.setblocking(True)
        # A blocked recv (slow body upload) or send (client not reading) gives up after this long.
        self.sock.settimeout(server.limits.header_timeout)
        while True:
            try:
                leftover = self.run_cycle(head, rest)
            finally:
                server._done()
            if leftover is None or server.should_exit:
                if self.lingering and not server.should_exit:
                    self._give_back()
                else:
                    self.close()
                return
            result = self.head.feed(leftover) if leftover else None
            if isinstance(result, tuple):  # a pipelined request is already complete: serve it on this thread
                with server._lock:
                    server.in_flight += 1
                head, rest = result
                continue
            if result is not None:
                self.send_rejection(result)
            self._give_back()
            return

    def _give_back(self) -> None:
        """Return the connection to the selector thread (to wait for a head, or to linger)."""
        self.sock.setblocking(False)
        self.server.returned.append(self)
        self.server._wake()

    # =============================================================================================================
    # Event loop over h11 events
    # =============================================================================================================

    def run_cycle(self, head: bytes, rest: bytes) -> bytes | None:
        """One request and its response.  Returns the bytes received after it (the start of the next request)
        if the connection can be kept alive, else ``None``."""
        limits = self.server.limits
        conn = new_cycle(limits)
        conn.receive_data(head)
        if rest:
            conn.receive_data(rest)
        try:
            request = conn.next_event()
        except h11.RemoteProtocolError as exc:  # strict.py passed it, h11 still refused: answer h11's status
            self.send_rejection(Rejection(exc.error_status_hint, str(exc), "h11"))
            return None
        assert isinstance(request, h11.Request), request  # a complete head always yields a Request
        headers = list(request.headers)  # once: iterating h11's Headers object is slow, a list is not
        # A declared Content-Length over max_body_bytes never gets here: strict.check_head answered it 413
        # from the head, before a byte of the body was read (RFC 9110 §15.5.14).
        cycle = RequestCycle(self, conn, request, headers)
        cycle.run()
        if cycle.aborted:
            return None
        if cycle.writer.finished and conn.their_state is h11.SEND_BODY and not cycle.unanswered_continue:
            # The app answered without reading the whole body.  Read and discard the rest, so the next request
            # starts at the right byte, rather than closing with unread data (which makes the kernel send RST,
            # and a client may lose our response with it).  Bounded by max_body_bytes.
            if not cycle.drain():
                return None
        if not reusable(conn, cycle.writer):
            return None
        return conn.trailing_data[0]


# =================================================================================================================
# Request cycle
# =================================================================================================================


class RequestCycle:
    """One ``app(environ, start_response)`` call: the socket reads and writes it needs, and its outcome."""

    def __init__(
        self, connection: Connection, conn: h11.Connection, request: h11.Request, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.connection = connection
        self.sock = connection.sock
        self.conn = conn
        self.request = request
        self.server = connection.server
        self.limits = self.server.limits
        self.body_received = 0
        self.continue_sent = False
        self.headers = headers
        self.expects_continue = any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
        self.aborted = False
        self.writer = ResponseWriter(
            request.method,
            request.http_version,
            headers,
            date=self.server.date,
            server_header=SERVER_HEADER,
            closing=self.server.should_exit,
        )

    @property
    def unanswered_continue(self) -> bool:
        """The client waits for 100 Continue that never came: it may never send the body, so do not wait for it
        (RFC 9110 §10.1.1: a server that answers without reading the content may close the connection).

        A client may also send the body without waiting (RFC 9110 §10.1.1 lets it, after a pause of its choosing);
        h11 then clears ``client_is_waiting_for_100_continue`` when the first body bytes arrive, and the rest of
        the body can be drained like any other, keeping the connection."""
        return self.expects_continue and not self.continue_sent and self.conn.client_is_waiting_for_100_continue

    # -- socket I/O for the core ---------------------------------------------------------------------------------
    def transmit(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientDisconnected(f"client went away while we were sending: {exc}") from exc

    def pull(self) -> bytes:
        """The next piece of request body, ``b""`` at its end: what ``wsgi.input`` reads from."""
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.client_is_waiting_for_100_continue and not self.continue_sent:
                    # RFC 9110 §10.1.1: the client waits for "100 (Continue)" before sending the content.  We send it
                    # only now that the app actually reads the body: an app that refuses the request (413, 401) never
                    # makes the client upload it.
                    self.transmit(CONTINUE)
                    self.continue_sent = True
                try:
                    data = self.sock.recv(RECV_SIZE)
                except OSError as exc:
                    raise ClientDisconnected(f"client went away while sending the body: {exc}") from exc
                conn.receive_data(data)  # b"" marks EOF: h11 then raises RemoteProtocolError if the body is incomplete
                continue
            if type(event) is h11.Data:
                self.body_received += len(event.data)
                if self.limits.max_body_bytes and self.body_received > self.limits.max_body_bytes:
                    raise BodyTooLarge(f"request body over {self.limits.max_body_bytes} bytes")
                return bytes(event.data)
            if type(event) is h11.EndOfMessage:
                return b""
            raise RuntimeError(f"unexpected h11 event while reading the body: {event!r}")

    def drain(self) -> bool:
        """Discard the unread rest of the body; True if it ended within the limit."""
        try:
            while self.pull():
                pass
            return True
        except (ClientDisconnected, BodyTooLarge, h11.RemoteProtocolError):
            return False

    # -- the application call ------------------------------------------------------------------------------------
    def run(self) -> None:
        request = self.request
        started_at = time.perf_counter()
        start = StartResponse(self.writer, self.transmit)
        environ = build_environ(
            request,
            server=self.server.server_address,
            client=self.connection.client,
            wsgi_input=WSGIInput(self.pull),
            multiprocess=self.server.config.workers > 1,
            headers=self.headers,
        )
        result = None
        try:
            result = self.server.app(environ, start)
            iterate_body(result, start)
        except ClientDisconnected as exc:
            log.debug("%s:%d %s", *self.connection.client, exc)
            self.aborted = True
        except (BodyTooLarge, h11.RemoteProtocolError) as exc:  # the client's fault, found while reading the body
            status = 413 if isinstance(exc, BodyTooLarge) else getattr(exc, "error_status_hint", 400)
            self.fail(start, status, str(exc))
        except Exception:
            # PEP 3333 leaves error handling to the server.  The traceback goes to the log, never to the client
            # (CONTRACT.md #12); the client gets a generic 500 if nothing was sent yet.
            log.exception("application error on %s %s", request.method.decode(), request.target.decode("latin-1"))
            self.fail(start, 500, "Internal Server Error")
        finally:
            if hasattr(result, "close"):
                # PEP 3333: "If the iterable returned by the application has a close() method, the server or
                # gateway must call that method upon completion of the current request, whether the request was
                # completed normally, or terminated early due to an application error during iteration or an
                # early disconnect of the browser."
                try:
                    result.close()
                except Exception:
                    log.exception("error in the response iterable's close()")
        if self.server.config.access_log:
            access_log.info(
                access_line(
                    self.connection.client,
                    request.method,
                    request.target,
                    request.http_version,
                    self.writer.status,
                    self.writer.body_bytes,
                    time.perf_counter() - started_at,
                )
            )

    def fail(self, start: StartResponse, status: int, message: str) -> None:
        if start.finished:
            return  # the response went out complete; the error was logged, the connection stays usable
        if start.headers_sent:
            # Too late for an error status.  Aborting the connection (no terminating chunk, or fewer bytes than
            # the Content-Length) is the only way left to tell the client the response is incomplete.
            self.aborted = True
            return
        try:
            self.transmit(
                error_response(
                    self.writer, status, "Internal Server Error" if status == 500 else message, close=status != 500
                )
            )
            if status != 500:
                self.aborted = True  # 413/400: the body was not read; Connection: close was sent
                self.connection.begin_linger()
        except ClientDisconnected:
            self.aborted = True


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
) -> int:
    """Serve ``app`` until SIGTERM/SIGINT; returns the exit code.  Prints the serving line once listening."""
    config = Config(app, host, port, threads, workers, limits or Limits(), access_log)
    sock = bind(host, port, config.limits.backlog)

    def child(ready: Callable[[], None]) -> int:
        Server(config).serve(sock, ready)
        return 0

    return run_workers(workers, sock, child)


@contextmanager
def running(app: Any, *, threads: int = 8, limits: Limits | None = None, access_log: bool = False):  # type: ignore[no-untyped-def]
    """For tests: serve ``app`` on a free loopback port in a background thread; yields the base URL."""
    config = Config(app, "127.0.0.1", 0, threads, 1, limits or Limits(), access_log)
    sock = bind("127.0.0.1", 0, config.limits.backlog)
    server = Server(config)
    started = threading.Event()
    thread = threading.Thread(target=server.serve, args=(sock, started.set), daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield url_of(sock)
    finally:
        server.stop()
        thread.join(10)


def main(argv: list[str] | None = None) -> int:
    args = parser(
        "python -m servers.scratch_wsgi", "scratch-wsgi: a threaded WSGI server on h11", threads=True
    ).parse_args(argv)
    configure_logging(args.log_level)
    try:
        app = load_app(args.app)
        return serve(
            app,
            args.host,
            args.port,
            threads=args.threads,
            workers=args.workers,
            limits=limits_from(args),
            access_log=args.access_log,
        )
    except StartupFailed as exc:
        print(f"layercake: {exc}", file=sys.stderr)
        return STARTUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
