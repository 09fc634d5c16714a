"""scratch-wsgi live, on a random loopback port, with httpx and raw sockets.

The checks made of scratch-wsgi alone (write(), close(), environ, timeouts, signals, the arbiter ...) or made
differently of scratch-asgi; what both scratch servers must do alike runs for each in test_scratch_common.py."""

from __future__ import annotations

import logging
import signal
import threading
import wsgiref.validate
from pathlib import Path

import httpx
import pytest

from servers.core.limits import Limits
from servers.scratch_wsgi import running
from tests.servers import scratch_apps
from tests.servers.scratch_live import connect, read_response, read_until_closed, server_process, wait_for


@pytest.fixture
def url():  # type: ignore[no-untyped-def]
    with running(scratch_apps.wsgi_app, threads=4) as base:
        yield base


def test_plain_get_has_date_and_server(url: str) -> None:
    r = httpx.get(url + "/hello")
    assert r.status_code == 200 and r.text == "GET /hello"
    assert r.headers["server"] == "scratch-wsgi" and r.headers["date"].endswith(" GMT")


def test_large_upload(url: str) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    assert httpx.post(url + "/echo", content=data).content == data


def test_write_callable(url: str) -> None:
    assert httpx.get(url + "/write").text == "written and returned"


def test_disconnect_mid_stream_calls_close(url: str) -> None:
    scratch_apps.EVENTS.clear()
    sock = connect(url)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    sock.close()
    assert wait_for(lambda: "close" in scratch_apps.EVENTS)


def test_http_10_closes(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    assert read_until_closed(sock).endswith(b"GET /old")


def test_environ_over_the_wire(url: str) -> None:
    text = httpx.get(url + "/environ/a%2Fb?x=%41", headers={"X-Custom": "v"}).text
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env["PATH_INFO"] == "/environ/a/b" and env["QUERY_STRING"] == "x=%41" and env["HTTP_X_CUSTOM"] == "v"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_wsgiref_validate_finds_nothing_wrong() -> None:
    """wsgiref.validate checks the server side too (environ types, start_response, wsgi.input, close)."""
    errors: list[str] = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        try:
            return wsgiref.validate.validator(scratch_apps.wsgi_app)(environ, start_response)
        except AssertionError as exc:
            errors.append(str(exc))
            raise

    with running(app) as base, httpx.Client() as client:
        assert client.get(base + "/hello").status_code == 200
        assert client.post(base + "/echo", content=b"abc").content == b"abc"
        assert client.get(base + "/write").status_code == 200
        assert client.get(base + "/stream").status_code == 200
    assert errors == []


def test_header_timeout_closes_a_slow_client_while_others_are_served() -> None:
    with running(scratch_apps.wsgi_app, threads=1, limits=Limits(header_timeout=0.5)) as base:
        slow = connect(base)
        slow.sendall(b"GET / HTTP/1.1\r\nHost")  # and never more
        # The only worker thread is not held by the slow client:
        assert httpx.get(base + "/fast").text == "GET /fast"
        data = read_until_closed(slow)
        assert data.startswith(b"HTTP/1.1 408 ")


def test_a_client_that_stops_reading_is_cut_off_and_frees_its_worker(caplog: pytest.LogCaptureFixture) -> None:
    # The response's bytes are made (and the connection counts it complete) before they are written; the write
    # then waits for a client that never reads, until header_timeout.  The worker must close that connection as
    # a broken socket -- not fail on it as a bug -- and go on serving.
    body = b"x" * (32 << 20)  # more than loopback's socket buffers hold on both sides
    with running(scratch_apps.wsgi_app, threads=1, limits=Limits(header_timeout=0.5)) as base:
        stalled = connect(base)
        stalled.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        # and never reads: the only worker is held until the send times out, then serves the next client
        assert httpx.get(base + "/after", timeout=10).text == "GET /after"
        stalled.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_idle_keep_alive_connection_is_closed() -> None:
    with running(scratch_apps.wsgi_app, limits=Limits(keepalive_timeout=0.3)) as base:
        sock = connect(base)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)
        assert read_until_closed(sock) == b""  # closed by the server after the idle timeout


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server_process(
        "servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--no-access-log", notes=notes
    ) as srv:
        results: list[int] = []

        def get() -> None:
            results.append(httpx.get(srv.url + "/slow?1", timeout=10).status_code)

        threads = [threading.Thread(target=get) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_for(lambda: notes.exists() and notes.read_text().count("slow started") == 3)
        srv.signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert srv.wait() == 0
        assert results == [200, 200, 200]
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/")


def test_workers_share_the_port_and_stop_together() -> None:
    with server_process(
        "servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--workers", "2", "--no-access-log"
    ) as srv:
        assert srv.url, srv.stderr
        assert all(httpx.get(srv.url + f"/{i}").status_code == 200 for i in range(10))
        srv.signal(signal.SIGINT)
        assert srv.wait() == 0


def test_bad_app_target_is_a_readable_error() -> None:
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:nope") as srv:
        assert srv.wait() == 3
        assert "has no attribute 'nope'" in srv.stderr and "Traceback" not in srv.stderr


def test_half_closed_client_still_gets_its_answer(url: str) -> None:
    import socket

    sock = connect(url)
    sock.sendall(b"GET /slow?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.sock.shutdown(socket.SHUT_WR)
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"5\r\nslept\r\n0\r\n\r\n")


def children_of(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_the_arbiter_replaces_a_worker_that_dies() -> None:
    import os

    with server_process(
        "servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--workers", "2", "--no-access-log"
    ) as srv:
        before = children_of(srv.proc.pid)
        assert len(before) == 2
        os.kill(next(iter(before)), signal.SIGKILL)
        assert wait_for(lambda: len(children_of(srv.proc.pid)) == 2 and children_of(srv.proc.pid) != before)
        assert all(httpx.get(srv.url + "/").status_code == 200 for _ in range(5))
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
