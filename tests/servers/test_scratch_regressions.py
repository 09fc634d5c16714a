"""Regressions the duplicated protocol code hid, over real sockets, for every layer on our server of its interface:

* an early 413 with the body still arriving used to leave scratch-asgi's reading paused forever (Starlette, FastAPI);
* empty lines before a request line were stripped in quadratic time and re-armed the header timer;
* the 426 for a bad WebSocket version lost its ``Sec-WebSocket-Version`` header (RFC 6455 §4.4).

Each request is sent the way httpx, curl and browsers send it: head and body in one go, on a connection the client
means to reuse.  The answer must be the next request served, or a close announced with ``Connection: close`` -- and
never a connection that hangs (every read below is bounded by the socket timeout; a hang fails the test).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from layers import Layer, layers_of
from servers import scratch_asgi, scratch_wsgi
from servers.core.limits import Limits
from tests.servers.scratch_live import Client, read_response

LAYERS = [*layers_of("wsgi"), *layers_of("asgi")]
MIB = 1024 * 1024


@pytest.fixture(params=LAYERS, ids=[layer.name for layer in LAYERS])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Layer, str]]:
    layer: Layer = request.param
    running = scratch_wsgi.running if layer.interface == "wsgi" else scratch_asgi.running
    # A short header timeout, so that a test that would wait for it shows up as a 408 rather than a long wait.
    with running(layer.load(), limits=Limits(header_timeout=5.0)) as url:  # type: ignore[operator]
        yield layer, url


def status_and_headers(response: bytes) -> tuple[int, dict[bytes, bytes]]:
    head = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = dict(line.split(b": ", 1) for line in head[1:])
    return int(head[0].split(b" ")[1]), {name.lower(): value for name, value in fields.items()}


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send the whole request while the test reads: the server may answer (and stop reading) part-way."""

    def send() -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server closed on us after its answer: allowed, and checked by the reader

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def next_request_or_announced_close(client: Client, response: bytes) -> str:
    """After ``response``: the connection carries the next request, or it said ``Connection: close`` and closes."""
    _, headers = status_and_headers(response)
    if headers.get(b"connection", b"").lower() == b"close":
        assert client.read_until_closed() == b""  # nothing more, then EOF -- not a hang
        return "closed"
    client.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _ = status_and_headers(read_response(client))
    assert status == 200
    return "reused"


@pytest.mark.parametrize(
    ("path", "size"),
    [("/items", MIB + 4096), ("/echo", 16 * MIB + 1)],
    ids=["items-over-1MiB", "echo-over-16MiB"],
)
def test_oversized_body_sent_with_its_head_then_the_connection(served: tuple[Layer, str], path: str, size: int) -> None:
    _, url = served
    if path == "/items":
        body = json.dumps({"name": "x" * (size - 40), "price": 1.0}).encode()
        content_type = b"application/json"
    else:
        body, content_type = b"\0" * size, b"application/octet-stream"
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        path.encode(),
        content_type,
        len(body),
    )
    client = Client(url, timeout=20)
    try:
        sender = send_in_background(client.sock, head + body)
        response = read_response(client)
        assert status_and_headers(response)[0] == 413
        sender.join(20)
        next_request_or_announced_close(client, response)
    finally:
        client.close()


def test_a_megabyte_of_empty_lines_is_refused_not_timed_out(served: tuple[Layer, str]) -> None:
    _, url = served
    client = Client(url, timeout=10)
    try:
        send_in_background(client.sock, b"\r\n" * (MIB // 2))
        response = read_response(client)
        status, headers = status_and_headers(response)
        # 400 for the eleventh empty line (Limits.max_empty_lines), long before the 5 s header timeout's 408.
        assert status == 400 and b"empty lines" in response and headers[b"connection"] == b"close"
    finally:
        client.close()


def test_bad_websocket_version_426_says_which_version(served: tuple[Layer, str]) -> None:
    layer, url = served
    client = Client(url, timeout=10)
    try:
        client.sendall(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        status, headers = status_and_headers(read_response(client))
        if layer.interface == "wsgi":
            assert status == 404  # CONTRACT.md #14: a WSGI layer has no WebSocket; the request is a plain GET
        else:
            assert status == 426 and headers[b"sec-websocket-version"] == b"13"  # RFC 6455 §4.4
    finally:
        client.close()
