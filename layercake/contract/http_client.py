"""The contract's client for a real server: httpx, raw sockets where httpx will not go, and ``websockets``.

Theory of operation
-------------------
:class:`HTTPClient` has the interface every contract case is written against
(``request``, ``websocket``, ``close`` -- :class:`layercake.contract.cases.Client`) and
answers with the same :class:`~layercake.inprocess.Response` the in-process drivers
return, so a case cannot tell a socket from a direct call.  Most requests go through
httpx.  A few cannot: a declared 16 MiB upload whose body never comes, or an upload that
keeps going after the server has answered -- httpx sends a whole body before it reads a
response.  Those go through :func:`raw_exchange`, a raw socket that writes the head,
writes the body while watching for an early answer, and parses what comes back with
h11 (``h11.Connection(our_role=CLIENT)``).  WebSockets use the ``websockets`` client.

What it deliberately doesn't do: TLS, HTTP/2, retries.  Timeouts are generous and only
stop a hung server from hanging the run.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import h11

from layercake.inprocess import Headers, Response
from layers.shared.validation import MAX_ECHO_BODY


class HTTPClient:
    """The contract's client for a real server at ``url`` (``http://127.0.0.1:PORT``)."""

    transport = "http"

    def __init__(self, url: str, interface: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.interface = interface
        self.timeout = timeout
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

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
        lazy = not isinstance(body, (bytes, bytearray, list, tuple))
        if lazy:  # a generator: a body too large to build, or one the server should refuse part-way
            assert not isinstance(body, (bytes, bytearray))
            return raw_exchange(self.host, self.port, method, target, list(headers), body, content_length, self.timeout)
        import httpx

        content: bytes | Iterator[bytes] = bytes(body) if isinstance(body, (bytes, bytearray)) else iter(body)
        if chunked and isinstance(content, bytes):
            data = content
            content = iter([data[i : i + 65536] for i in range(0, len(data), 65536)] or [b""])
        req = self._http.build_request(method, target, headers=headers, content=content)
        resp = self._http.send(req, stream=True)
        chunks: list[bytes] = []
        complete = True
        try:
            for piece in resp.iter_raw():
                chunks.append(piece)
        except httpx.RemoteProtocolError:
            complete = False  # the server ended the response early (aborted)
        finally:
            resp.close()
        return Response(resp.status_code, list(resp.headers.multi_items()), chunks, None, complete)

    def websocket(self, path: str) -> HTTPWebSocket | Response:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        try:
            # websockets wants connect() as a context manager; the session outlives this
            # call, so it enters the context here and HTTPWebSocket.close() leaves it.
            conn = connect(
                f"ws://{self.host}:{self.port}{path}",
                open_timeout=self.timeout,
                max_size=MAX_ECHO_BODY + 1024,
                close_timeout=5,
            ).__enter__()
        except InvalidStatus as exc:
            r = exc.response
            return Response(r.status_code, [(k, v) for k, v in r.headers.raw_items()], [bytes(r.body or b"")])
        return HTTPWebSocket(conn, self.timeout)

    def close(self) -> None:
        self._http.close()


class HTTPWebSocket:
    """The ``websockets`` client behind the same three calls as the in-process session."""

    def __init__(self, conn: Any, timeout: float) -> None:
        self.conn, self.timeout = conn, timeout
        self.close_code: int | None = None

    def send(self, data: str | bytes) -> None:
        self.conn.send(data)

    def receive(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return self.conn.recv(timeout=self.timeout)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
            raise ConnectionError(f"closed by the server with code {self.close_code}") from None

    def close(self, code: int = 1000) -> bool:
        self.conn.close(code)
        self.close_code = self.conn.close_code  # the code in the server's close frame (RFC 6455 §7.1.5)
        return self.close_code == 1000


def raw_exchange(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: Headers,
    body: Iterable[bytes],
    content_length: int | None,
    timeout: float,
) -> Response:
    """Send one request over a raw socket while reading the answer on another thread.

    Used where the client must keep sending after the server may have answered: a
    declared-but-never-sent body (the server should answer from the headers alone) or
    an oversized chunked upload (the server should stop it).  Reading concurrently
    avoids the deadlock of both sides blocked on full send buffers.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    hdrs = [("Host", f"{host}:{port}"), *headers]
    hdrs.append(
        ("Content-Length", str(content_length)) if content_length is not None else ("Transfer-Encoding", "chunked")
    )
    request = h11.Request(method=method, target=target, headers=hdrs)
    # h11 is not thread-safe, so the writer and the reader each get a Connection; the
    # reader's is told about the request (so it knows, e.g., that a HEAD has no body).
    conn, writer = h11.Connection(h11.CLIENT), h11.Connection(h11.CLIENT)
    conn.send(request)
    got: dict[str, Any] = {"status": None, "headers": [], "chunks": [], "complete": False}
    finished = threading.Event()

    def reader() -> None:
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = sock.recv(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.DONE:
                        break
                    continue
                if isinstance(event, h11.Response):
                    got["status"] = event.status_code
                    got["headers"] = [(k.decode(), v.decode("latin-1")) for k, v in event.headers]
                elif isinstance(event, h11.Data):
                    got["chunks"].append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    got["complete"] = True
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except (OSError, h11.RemoteProtocolError):
            pass
        finally:
            finished.set()

    # The reader runs before the first byte is sent: a server that answers and closes
    # at once may reset the connection, and an RST discards what was not yet read.
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        sock.sendall(writer.send(request))
        if content_length is None:
            # Only a chunked body is sent: a declared length whose body never comes
            # checks that the answer was decided from the headers alone.
            try:
                for part in body:
                    if finished.is_set():
                        break
                    sock.sendall(writer.send(h11.Data(data=part)))
                else:
                    sock.sendall(writer.send(h11.EndOfMessage()))
            except (OSError, h11.LocalProtocolError):
                pass  # the server stopped reading: that is an acceptable refusal
        finished.wait(timeout)
    finally:
        sock.close()
    if got["status"] is None:
        return Response(0, [], [], None, False)
    return Response(got["status"], got["headers"], got["chunks"], None, got["complete"])
