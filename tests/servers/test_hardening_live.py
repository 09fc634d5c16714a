"""Both scratch servers under hostile or careless peers, on a real loopback socket.

Slow clients (a header-read timeout, an idle keep-alive timeout, other clients served
meanwhile, and in the threaded WSGI server no worker thread held by a trickling client),
overload (503 + ``Connection: close`` at ``--max-concurrency``), apps that send bad
response headers (500, never sent), an app whose Content-Length disagrees with its body
(the connection is closed), responses that must have no body (HEAD, 204, 304), and a
client that goes away mid-response (WSGI ``close()`` called; ASGI ``http.disconnect``
and ``send`` raising).  The limits are set small on the command line so nothing waits
long; every wait is bounded and none is asserted on.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.probe import Response, parse_response
from tests.servers.hardening_server import SCRATCH, Served, scratch

GET = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
SERVERS = sorted(SCRATCH) + [f"{name}+httptools" for name in sorted(SCRATCH)]  # each on h11, then on llhttp


def connect(served: Served) -> socket.socket:
    sock = socket.create_connection((served.host, served.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes: (bytes, closed?) -- closed is False if
    it was still open after ``limit`` seconds."""
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_response(sock: socket.socket, head_request: bool = False, buf: bytes = b"") -> tuple[Response | None, bytes]:
    """One response and the bytes after it (None if the server closed first)."""
    eof = False
    while True:
        parsed = parse_response(buf, head_request, eof)
        if parsed is not None:
            response, used = parsed
            return response, buf[used:]
        if eof:
            return None, buf
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        eof = not chunk
        buf += chunk


def get(served: Served, request: bytes = GET) -> Response | None:
    with connect(served) as sock:
        sock.sendall(request)
        return read_response(sock)[0]


def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return tmp_path / "notes.txt"


def notes_text(notes: Path) -> str:
    return notes.read_text() if notes.exists() else ""


# --- slow clients ---------------------------------------------------------------------


def test_header_timeout_cuts_off_a_trickling_client(server_name: str) -> None:
    with scratch(server_name, "--header-timeout", "0.5") as served:
        slow = connect(served)
        slow.sendall(b"GET /plaintext HTTP/1.1\r\nHo")  # ...and never the rest
        # Meanwhile the server keeps serving everyone else.
        for _ in range(3):
            response = get(served)
            assert response is not None and response.status == 200
        data, closed = read_until_closed(slow)
        slow.close()
        assert closed, "the server kept a connection whose head never completed"
        if data:  # answering 408 first is polite; closing silently is allowed too
            assert data.startswith(b"HTTP/1.1 408"), data[:100]


def test_idle_keepalive_connection_is_closed(server_name: str) -> None:
    with scratch(server_name, "--keepalive-timeout", "0.5") as served, connect(served) as sock:
        sock.sendall(GET)
        response, rest = read_response(sock)
        assert response is not None and response.status == 200
        data, closed = read_until_closed(sock)
        assert closed and rest + data == b""


def test_trickling_clients_do_not_hold_worker_threads() -> None:
    # One worker thread and four clients trickling their heads: if a client held the
    # thread while its head arrived, the good request below could never be served.
    with scratch("scratch-wsgi", "--threads", "1", "--header-timeout", "30") as served:
        slow = [connect(served) for _ in range(4)]
        try:
            for sock in slow:
                sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\n")
            for _ in range(3):
                response = get(served)
                assert response is not None and response.status == 200
            # ...and the slow ones are still served once they finish.
            for sock in slow:
                sock.sendall(b"Content-Length: 2\r\n\r\nhi")
                response, _ = read_response(sock)
                assert response is not None and response.status == 200 and response.body == b"hi"
        finally:
            for sock in slow:
                sock.close()


# --- overload -------------------------------------------------------------------------


def test_overload_is_answered_503_and_closed(server_name: str, notes: Path) -> None:
    env = {"LAYERCAKE_TEST_NOTES": str(notes)}
    with scratch(server_name, "--max-concurrency", "1", env=env) as served:
        busy = connect(served)
        busy.sendall(b"GET /misbehave/slow?3 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wait_for(lambda: "slow started" in notes_text(notes)), served.log()[-2000:]
        with connect(served) as sock:
            sock.sendall(GET)
            response, _ = read_response(sock)
            assert response is not None and response.status == 503
            assert (response.header("connection") or "").lower() == "close"
            _, closed = read_until_closed(sock)
            assert closed
        response, _ = read_response(busy)
        busy.close()
        assert response is not None and response.status == 200 and response.body == b"slow"
        # Capacity is back -- once the worker has finished the cycle.  Its slot is freed after the last byte is
        # written, so a client that saw the response can be a moment ahead of it: ask until served, within a bound.
        assert wait_for(lambda: (again := get(served)) is not None and again.status == 200)


# --- what the app sends ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["header-crlf", "header-lf", "header-nul", "name-crlf"])
def test_bad_response_headers_become_500_and_are_never_sent(server_name: str, fault: str) -> None:
    with scratch(server_name) as served, connect(served) as sock:
        sock.sendall(f"GET /misbehave/{fault} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        response, _ = read_response(sock)
        assert response is not None and response.status == 500
        assert not any(name.lower() in ("x-bad", "injected") for name, _ in response.headers), response.headers
        assert b"Injected" not in response.body and b"\x00" not in response.body
        assert get(served).status == 200


@pytest.mark.parametrize("fault", ["length-short", "length-long"])
def test_content_length_mismatch_closes_the_connection(server_name: str, fault: str) -> None:
    declared = {"length-short": 100, "length-long": 2}[fault]
    with scratch(server_name) as served, connect(served) as sock:
        # A second request behind it: it must not be answered out of a desynchronised stream.
        sock.sendall(f"GET /misbehave/{fault} HTTP/1.1\r\nHost: t\r\n\r\n".encode() + GET)
        data, closed = read_until_closed(sock)
        assert closed, "the connection stayed open after a body that disagreed with its Content-Length"
        head, _, body = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            assert len(body) < declared if fault == "length-short" else len(body) <= declared, data
            assert b"HTTP/1.1" not in body
        elif data:  # refused before anything was sent: a 500 is the other honest answer...
            assert head.startswith(b"HTTP/1.1 500"), data[:200]
            assert data.count(b"HTTP/1.1") == 1, data[:200]
        # ...and so is closing without a word: the client sees a failed request, never a wrong one.
        assert get(served).status == 200


def test_head_response_has_no_body(server_name: str) -> None:
    with scratch(server_name) as served, connect(served) as sock:
        sock.sendall(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
        head_response, rest = read_response(sock, head_request=True)
        assert head_response is not None and head_response.status == 200
        # Had the server sent the body, it would sit where the next status line should be.
        response, _ = read_response(sock, buf=rest)
        assert response is not None and response.status == 200 and response.body == b"Hello, World!"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_carry_no_body(server_name: str, status: int) -> None:
    with scratch(server_name) as served, connect(served) as sock:
        sock.sendall(f"GET /misbehave/{status} HTTP/1.1\r\nHost: t\r\n\r\n".encode() + GET)
        response, rest = read_response(sock)
        assert response is not None and response.status == status
        assert b"must not be sent" not in rest
        follow, rest = read_response(sock, buf=rest)
        # The body the app tried to send never reaches the wire; the connection either
        # carries on (the next answer is the 200) or is closed -- never desynchronised.
        if follow is not None:
            assert follow.status == 200 and follow.body == b"Hello, World!"
        assert b"must not be sent" not in rest


# --- a client that goes away ------------------------------------------------------------


def _abort(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends a RST at once, like a crashed or killed client.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_wsgi_iterable_closed_when_client_disconnects(notes: Path) -> None:
    with scratch("scratch-wsgi", env={"LAYERCAKE_TEST_NOTES": str(notes)}) as served:
        sock = connect(served)
        sock.sendall(b"GET /misbehave/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        _abort(sock)
        assert wait_for(lambda: "wsgi close called" in notes_text(notes)), served.log()[-2000:]
        assert get(served).status == 200


def test_asgi_sees_disconnect_and_send_raises(notes: Path) -> None:
    with scratch("scratch-asgi", env={"LAYERCAKE_TEST_NOTES": str(notes)}) as served:
        sock = connect(served)
        sock.sendall(b"GET /misbehave/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        _abort(sock)
        assert wait_for(lambda: "asgi send" in notes_text(notes)), served.log()[-2000:]
        text = notes_text(notes)
        assert "asgi received http.disconnect" in text
        assert "asgi send raised" in text, text
        assert get(served).status == 200


def test_many_hostile_connections_at_once_leave_the_server_serving(server_name: str) -> None:
    # Twenty threads each sending a different refused head at the same time.
    bad = [
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"X\x00 / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    statuses: list[int | None] = []

    def hit(data: bytes) -> None:
        with connect(served) as sock:
            sock.sendall(data)
            response, _ = read_response(sock)
            statuses.append(response.status if response else None)

    with scratch(server_name) as served:
        threads = [threading.Thread(target=hit, args=(bad[i % len(bad)],)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses) == sorted([505, 400, 400, 400] * 5)
        assert get(served).status == 200
