"""scratch-wsgi live, on a random loopback port, with httpx and raw sockets."""

from __future__ import annotations

import signal
import threading
import time
import wsgiref.validate
from pathlib import Path

import httpx
import pytest

from servers.core.limits import Limits
from servers.scratch_wsgi import running
from tests.servers import scratch_apps
from tests.servers.scratch_live import connect, read_response, read_until_closed, server_process


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def url():  # type: ignore[no-untyped-def]
    with running(scratch_apps.wsgi_app, threads=4) as base:
        yield base


def test_plain_get_has_date_and_server(url: str) -> None:
    r = httpx.get(url + "/hello")
    assert r.status_code == 200 and r.text == "GET /hello"
    assert r.headers["server"] == "scratch-wsgi" and r.headers["date"].endswith(" GMT")


def test_keep_alive_and_pipelining(url: str) -> None:
    sock = connect(url)
    # Three requests in one write: answered in order on the same connection (RFC 9112 §9.3.2).
    sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
    responses = [read_response(sock) for _ in range(3)]
    assert [r.split(b"\r\n\r\n", 1)[1] for r in responses] == [b"GET /one", b"hello", b"GET /three"]
    sock.sendall(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n")  # still open afterwards
    assert read_response(sock).endswith(b"GET /four")
    sock.close()


def test_pipelined_bytes_split_across_the_body(url: str) -> None:
    sock = connect(url)
    data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    for i in range(0, len(data), 7):
        sock.sendall(data[i:i + 7])
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


def test_large_upload(url: str) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    assert httpx.post(url + "/echo", content=data).content == data


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
    sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 413 ")
    assert read_response(sock).endswith(b"GET /after")
    sock.close()


def test_write_callable(url: str) -> None:
    assert httpx.get(url + "/write").text == "written and returned"


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


def test_rejected_head_gets_status_and_close(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 ") and b"connection: close" in data.lower()


def test_content_length_over_limit_is_413_without_reading() -> None:
    with running(scratch_apps.wsgi_app, limits=Limits(max_body_bytes=100)) as base:
        assert httpx.post(base + "/echo", content=b"x" * 101).status_code == 413
        # A large upload refused from its header: the lingering close lets the client read the 413 (no RST).
        assert httpx.post(base + "/echo", content=b"x" * 8_000_000).status_code == 413


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


def test_idle_keep_alive_connection_is_closed() -> None:
    with running(scratch_apps.wsgi_app, limits=Limits(keepalive_timeout=0.3)) as base:
        sock = connect(base)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)
        assert read_until_closed(sock) == b""  # closed by the server after the idle timeout


def test_max_concurrency_sheds_with_503() -> None:
    with running(scratch_apps.wsgi_app, limits=Limits(max_concurrency=1)) as base:
        scratch_apps.EVENTS.clear()
        slow = threading.Thread(target=httpx.get, args=(base + "/slow?1",), kwargs={"timeout": 10})
        slow.start()
        assert wait_for(lambda: "slow started" in scratch_apps.EVENTS)  # the one allowed request is in flight
        r = httpx.get(base + "/fast")
        slow.join()
        assert r.status_code == 503 and r.headers["connection"] == "close"


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--no-access-log",
                        notes=notes) as srv:
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
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--workers", "2",
                        "--no-access-log") as srv:
        assert srv.url, srv.stderr
        assert all(httpx.get(srv.url + f"/{i}").status_code == 200 for i in range(10))
        srv.signal(signal.SIGINT)
        assert srv.wait() == 0


def test_bad_app_target_is_a_readable_error() -> None:
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:nope") as srv:
        assert srv.wait() == 3
        assert "has no attribute 'nope'" in srv.stderr and "Traceback" not in srv.stderr


@pytest.mark.parametrize("enabled", [True, False], ids=["access-log", "no-access-log"])
def test_access_log_line_per_request(enabled: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="layercake.access")
    with running(scratch_apps.wsgi_app, access_log=enabled) as base:
        httpx.get(base + "/logged?x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "layercake.access"]
    if enabled:
        assert len(lines) == 1 and '"GET /logged?x=1 HTTP/1.1" 200' in lines[0]
    else:
        assert lines == []


def test_half_closed_client_still_gets_its_answer(url: str) -> None:
    import socket
    sock = connect(url)
    sock.sendall(b"GET /slow?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.sock.shutdown(socket.SHUT_WR)
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"5\r\nslept\r\n0\r\n\r\n")


def test_chunked_body_over_limit_is_413() -> None:
    with running(scratch_apps.wsgi_app, limits=Limits(max_body_bytes=100)) as base:
        assert httpx.post(base + "/echo", content=iter([b"x" * 60, b"y" * 60])).status_code == 413


def test_grace_period_bounds_the_shutdown(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--no-access-log",
                        "--graceful-timeout", "0.5", notes=notes) as srv:
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
        assert errors and "still in flight after the grace period" in srv.stderr


def children_of(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_the_arbiter_replaces_a_worker_that_dies() -> None:
    import os
    with server_process("servers.scratch_wsgi", "tests.servers.scratch_apps:wsgi_app", "--workers", "2",
                        "--no-access-log") as srv:
        before = children_of(srv.proc.pid)
        assert len(before) == 2
        os.kill(next(iter(before)), signal.SIGKILL)
        assert wait_for(lambda: len(children_of(srv.proc.pid)) == 2 and children_of(srv.proc.pid) != before)
        assert all(httpx.get(srv.url + "/").status_code == 200 for _ in range(5))
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
