"""What scratch-wsgi and scratch-asgi must both do on the wire, live on a random loopback port, once per server.

Every test here takes the ``server`` fixture, parametrised over ``SCRATCH_SERVERS`` (ids scratch-wsgi and
scratch-asgi): the same request bytes, the same test app behaviour (tests/servers/scratch_apps.py has a WSGI and an
ASGI app answering the same paths alike), the same assertions.  HTTP/1.1 framing, keep-alive and pipelining
(RFC 9112 §9.3.2), 100-continue (RFC 9110 §10.1.1), draining an unread body, app errors before and after the
response started, the body and concurrency limits, the access log and the shutdown grace period are the server's
job whichever interface the app speaks.

What is not here stays in test_scratch_wsgi.py / test_scratch_asgi.py: what one interface has and the other has
not (write(), close() on disconnect, environ and wsgiref.validate; WebSockets, lifespan, flow control, out-of-order
messages), the WSGI arbiter, and the pairs whose checks differ (the half-closed client's response framing, what
the workers test asks of each worker, which signal stops them, the header-timeout pool).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers.core.limits import Limits
from tests.servers import scratch_apps
from tests.servers.scratch_live import (
    SCRATCH_SERVERS,
    ScratchServer,
    connect,
    read_response,
    read_until_closed,
    wait_for,
)

# The in-process options of the per-server files' own ``url`` fixtures, so a test moved here serves as it did there.
URL_OPTIONS: dict[str, dict[str, int]] = {"scratch-wsgi": {"threads": 4}, "scratch-asgi": {}}

# What each server logs when --graceful-timeout cuts requests off: the same event, each server's own words.
GRACE_PERIOD_WARNING = {
    "scratch-wsgi": "still in flight after the grace period",
    "scratch-asgi": "still running after the grace period",
}


@pytest.fixture(params=SCRATCH_SERVERS, ids=[s.name for s in SCRATCH_SERVERS])
def server(request: pytest.FixtureRequest) -> ScratchServer:
    return request.param


@pytest.fixture
def url(server: ScratchServer) -> Iterator[str]:
    with server.running(**URL_OPTIONS[server.name]) as base:
        yield base


# --- HTTP/1.1 on one connection -------------------------------------------------------------------------------------


def test_keep_alive_and_pipelining(url: str) -> None:
    sock = connect(url)
    # Three requests in one write: answered in order on the same connection (RFC 9112 §9.3.2).
    sock.sendall(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    responses = [read_response(sock) for _ in range(3)]
    assert [r.split(b"\r\n\r\n", 1)[1] for r in responses] == [b"GET /one", b"hello", b"GET /three"]
    sock.sendall(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n")  # still open afterwards
    assert read_response(sock).endswith(b"GET /four")
    sock.close()


def test_a_response_larger_than_the_socket_buffers_reaches_a_slow_reader(url: str) -> None:
    # More than the kernel buffers hold on both sides: the server's first send takes what fits and the rest must
    # wait for the client to read (scratch-wsgi: transmit's timeout-mode sendall; scratch-asgi: the transport's
    # buffer and drain).  The connection then serves the next request as usual.
    body = bytes(range(256)) * (16 << 12)  # 16 MiB of every byte value: more than loopback's buffers hold
    sock = connect(url)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    while len(sock.buf) < len(body):  # read slowly: the server's send buffer stays full for a while
        piece = sock.sock.recv(65536)
        if not piece:
            break  # closed early: read_response below says what arrived
        sock.buf += piece
        time.sleep(0.002)
    response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(body)
    sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock).endswith(b"GET /after")
    sock.close()


def test_pipelined_bytes_split_across_the_body(url: str) -> None:
    sock = connect(url)
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    for i in range(0, len(data), 7):
        sock.sendall(data[i : i + 7])
        time.sleep(0.002)
    assert read_response(sock).endswith(b"abc")
    assert read_response(sock).endswith(b"GET /next")
    sock.close()


def test_chunked_upload(url: str) -> None:
    def body():  # type: ignore[no-untyped-def]
        for i in range(20):
            yield b"piece %d;" % i

    r = httpx.post(url + "/echo", content=body())
    assert r.content == b"".join(b"piece %d;" % i for i in range(20))


def test_100_continue_sent_when_the_app_reads(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
    sock.sendall(b"body")
    assert read_response(sock).endswith(b"\r\n\r\nbody")
    sock.close()


def test_no_100_continue_when_the_app_refuses(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    data = read_until_closed(sock)  # the client never sent the body, so the server closes
    assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data


def test_unread_body_is_drained_and_connection_reused(url: str) -> None:
    sock = connect(url)
    sock.sendall(
        b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert read_response(sock).startswith(b"HTTP/1.1 413 ")
    assert read_response(sock).endswith(b"GET /after")
    sock.close()


def test_rejected_head_gets_status_and_close(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 ") and b"connection: close" in data.lower()


# --- app errors -----------------------------------------------------------------------------------------------------


def test_app_exception_before_start_is_500_and_connection_survives(url: str) -> None:
    with httpx.Client() as client:
        r = client.get(url + "/error-before")
        assert r.status_code == 500 and "secret" not in r.text
        assert client.get(url + "/ok").text == "GET /ok"


def test_app_exception_after_start_aborts_the_response(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /error-after HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and b"first part" in data
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the client can tell it was cut short


# --- limits ---------------------------------------------------------------------------------------------------------


def test_content_length_over_limit_is_413_without_reading(server: ScratchServer) -> None:
    with server.running(limits=Limits(max_body_bytes=100)) as base:
        assert httpx.post(base + "/echo", content=b"x" * 101).status_code == 413
        # A large upload refused from its header: the lingering close lets the client read the 413 (no RST).
        assert httpx.post(base + "/echo", content=b"x" * 8_000_000).status_code == 413


def test_chunked_body_over_limit_is_413(server: ScratchServer) -> None:
    with server.running(limits=Limits(max_body_bytes=100)) as base:
        assert httpx.post(base + "/echo", content=iter([b"x" * 60, b"y" * 60])).status_code == 413


def test_max_concurrency_sheds_with_503(server: ScratchServer) -> None:
    with server.running(limits=Limits(max_concurrency=1)) as base:
        scratch_apps.EVENTS.clear()
        slow = threading.Thread(target=httpx.get, args=(base + "/slow?1",), kwargs={"timeout": 10})
        slow.start()
        assert wait_for(lambda: "slow started" in scratch_apps.EVENTS)  # the one allowed request is in flight
        r = httpx.get(base + "/fast")
        slow.join()
        assert r.status_code == 503 and r.headers["connection"] == "close"


# --- logging and shutdown -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False], ids=["access-log", "no-access-log"])
def test_access_log_line_per_request(server: ScratchServer, enabled: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="layercake.access")
    with server.running(access_log=enabled) as base:
        httpx.get(base + "/logged?x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "layercake.access"]
    if enabled:
        assert len(lines) == 1 and '"GET /logged?x=1 HTTP/1.1" 200' in lines[0]
    else:
        assert lines == []


def test_grace_period_bounds_the_shutdown(server: ScratchServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server.process("--no-access-log", "--graceful-timeout", "0.5", notes=notes) as srv:
        errors: list[str] = []

        def get() -> None:
            try:
                httpx.get(srv.url + "/slow?30", timeout=20)
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)

        thread = threading.Thread(target=get)
        thread.start()
        assert wait_for(lambda: notes.exists() and "slow started" in notes.read_text())
        srv.signal(signal.SIGTERM)
        assert srv.wait(timeout=10) == 0  # long before the 30 s request could have finished
        thread.join()
        assert errors and GRACE_PERIOD_WARNING[server.name] in srv.stderr
