"""scratch-asgi live, on a random loopback port, with httpx, raw sockets and the websockets client."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from servers.core.limits import Limits
from servers.scratch_asgi import running
from tests.servers import scratch_apps
from tests.servers.scratch_live import connect, read_response, read_until_closed, server_process


@pytest.fixture
def url():  # type: ignore[no-untyped-def]
    with running(scratch_apps.asgi_app) as base:
        yield base


def ws_url(url: str, path: str) -> str:
    return url.replace("http://", "ws://") + path


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


# --- HTTP ---------------------------------------------------------------------------------------------------------

def test_plain_get_has_date_server_and_lifespan_state(url: str) -> None:
    r = httpx.get(url + "/state")
    assert r.status_code == 200 and r.text == "yes"  # set in lifespan startup, seen through scope["state"]
    assert r.headers["server"] == "scratch-asgi" and r.headers["date"].endswith(" GMT")


def test_keep_alive_and_pipelining(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
    responses = [read_response(sock) for _ in range(3)]
    assert [r.split(b"\r\n\r\n", 1)[1] for r in responses] == [b"GET /one", b"hello", b"GET /three"]
    sock.sendall(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n")
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
    assert httpx.post(url + "/echo", content=body()).content == b"".join(b"piece %d;" % i for i in range(20))


def test_large_upload_with_flow_control(url: str) -> None:
    data = bytes(range(256)) * 16384  # 4 MiB, far above the high-water mark
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
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data


def test_unread_body_is_drained_and_connection_reused(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 413 ")
    assert read_response(sock).endswith(b"GET /after")
    sock.close()


def test_app_exception_before_start_is_500_and_connection_survives(url: str) -> None:
    with httpx.Client() as client:
        r = client.get(url + "/error-before")
        assert r.status_code == 500 and "secret" not in r.text
        assert client.get(url + "/ok").text == "GET /ok"


def test_app_exception_after_start_aborts_the_response(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /error-after HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and b"first part" in data and not data.endswith(b"0\r\n\r\n")


def test_messages_out_of_order_are_a_500_with_a_readable_log(url: str, caplog: pytest.LogCaptureFixture) -> None:
    r = httpx.get(url + "/bad-order")
    assert r.status_code == 500
    assert wait_for(lambda: "Expected ASGI message 'http.response.start'" in caplog.text)


def test_disconnect_mid_stream_send_raises_and_receive_says_disconnect(url: str) -> None:
    scratch_apps.EVENTS.clear()
    sock = connect(url)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    sock.close()
    assert wait_for(lambda: len(scratch_apps.EVENTS) >= 2)
    # ASGI 2.4: send() on a closed connection raises an OSError subclass; receive() gives http.disconnect.
    assert scratch_apps.EVENTS == ["send raised ClientDisconnected", "receive gave http.disconnect"]


def test_content_length_over_limit_is_413_without_reading() -> None:
    with running(scratch_apps.asgi_app, limits=Limits(max_body_bytes=100)) as base:
        assert httpx.post(base + "/echo", content=b"x" * 101).status_code == 413
        # A large upload refused from its header: the lingering close lets the client read the 413 (no RST).
        assert httpx.post(base + "/echo", content=b"x" * 8_000_000).status_code == 413


def test_chunked_body_over_limit_is_413() -> None:
    with running(scratch_apps.asgi_app, limits=Limits(max_body_bytes=100)) as base:
        r = httpx.post(base + "/echo", content=iter([b"x" * 60, b"y" * 60]))
        assert r.status_code == 413


def test_rejected_head_gets_status_and_close(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 ") and b"connection: close" in data.lower()


def test_header_timeout_and_others_still_served() -> None:
    with running(scratch_apps.asgi_app, limits=Limits(header_timeout=0.5)) as base:
        slow = connect(base)
        slow.sendall(b"GET / HTTP/1.1\r\nHost")
        assert httpx.get(base + "/fast").text == "GET /fast"
        assert read_until_closed(slow).startswith(b"HTTP/1.1 408 ")


def test_max_concurrency_sheds_with_503() -> None:
    with running(scratch_apps.asgi_app, limits=Limits(max_concurrency=1)) as base:
        scratch_apps.EVENTS.clear()
        slow = threading.Thread(target=httpx.get, args=(base + "/slow?1",), kwargs={"timeout": 10})
        slow.start()
        assert wait_for(lambda: "slow started" in scratch_apps.EVENTS)  # the one allowed request is in flight
        r = httpx.get(base + "/fast")
        slow.join()
        assert r.status_code == 503 and r.headers["connection"] == "close"


# --- WebSockets -----------------------------------------------------------------------------------------------------

def test_websocket_echo_text_binary_and_subprotocol(url: str) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(url, "/ws"), subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send(["frag", "mented"])  # one message in two fragments, reassembled by the server
            assert await ws.recv() == "fragmented"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
    run(main())


def test_websocket_client_close_reaches_the_app(url: str) -> None:
    scratch_apps.EVENTS.clear()

    async def main() -> None:
        async with websockets.connect(ws_url(url, "/ws")) as ws:
            await ws.close(code=1000)
            assert ws.close_code == 1000
    run(main())
    assert wait_for(lambda: "ws disconnect 1000" in scratch_apps.EVENTS)


def test_websocket_app_close_code(url: str) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(url, "/ws")) as ws:
            await ws.send("close please")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4000
    run(main())


def test_websocket_close_before_accept_is_403(url: str) -> None:
    async def main() -> None:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(ws_url(url, "/deny")):
                pass
        assert info.value.response.status_code == 403
    run(main())


def test_websocket_message_over_limit_is_1009() -> None:
    async def main(base: str) -> None:
        async with websockets.connect(ws_url(base, "/ws"), max_size=None) as ws:
            await ws.send("x" * 2000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
    with running(scratch_apps.asgi_app, limits=Limits(max_ws_message=1000)) as base:
        run(main(base))


def test_websocket_protocol_error_gets_a_1002_close_frame(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 101 ")
    sock.sendall(b"\x81\x02hi")  # an unmasked frame from a client (RFC 6455 §5.1: must fail the connection)
    data = read_until_closed(sock)
    assert data[:1] == b"\x88" and data[2:4] == (1002).to_bytes(2, "big")


def test_bad_websocket_version_is_426(url: str) -> None:
    sock = connect(url)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert read_until_closed(sock).startswith(b"HTTP/1.1 426 ")


# --- process: lifespan, signals, workers -------------------------------------------------------------------------

def test_lifespan_startup_failure_exits_non_zero_with_the_message() -> None:
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:failing_lifespan") as srv:
        assert srv.wait() == 3
        assert "database unreachable at db:5432" in srv.stderr
        assert "serving on" not in srv.stderr


def test_app_without_lifespan_is_tolerated() -> None:
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:no_lifespan", "--no-access-log") as srv:
        assert httpx.get(srv.url + "/").text == "no lifespan, still fine"
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


def test_sigterm_finishes_in_flight_requests_closes_websockets_1012_and_exits_0(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--no-access-log",
                        notes=notes) as srv:
        results: list[int] = []

        def get() -> None:
            results.append(httpx.get(srv.url + "/slow?1", timeout=10).status_code)

        async def websocket_client() -> int | None:
            async with websockets.connect(ws_url(srv.url, "/ws")) as ws:
                await ws.send("hi")
                await ws.recv()
                srv.signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                return ws.close_code

        threads = [threading.Thread(target=get) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_for(lambda: notes.exists() and notes.read_text().count("slow started") == 3)
        code = run(websocket_client())
        for t in threads:
            t.join()
        assert code == 1012
        assert results == [200, 200, 200]
        assert srv.wait() == 0


def test_workers_share_the_port_and_stop_together() -> None:
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--workers", "2",
                        "--no-access-log") as srv:
        assert srv.url, srv.stderr
        assert all(httpx.get(srv.url + "/state").text == "yes" for _ in range(10))
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


@pytest.mark.parametrize("enabled", [True, False], ids=["access-log", "no-access-log"])
def test_access_log_line_per_request(enabled: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="layercake.access")
    with running(scratch_apps.asgi_app, access_log=enabled) as base:
        httpx.get(base + "/logged?x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "layercake.access"]
    if enabled:
        assert len(lines) == 1 and '"GET /logged?x=1 HTTP/1.1" 200' in lines[0]
    else:
        assert lines == []


def test_sigint_closes_websockets_with_1001() -> None:
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--no-access-log") as srv:
        async def client() -> int | None:
            async with websockets.connect(ws_url(srv.url, "/ws")) as ws:
                await ws.send("hi")
                await ws.recv()
                srv.signal(signal.SIGINT)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                return ws.close_code
        assert run(client()) == 1001
        assert srv.wait() == 0


def test_half_closed_client_still_gets_its_answer(url: str) -> None:
    import socket
    sock = connect(url)
    sock.sendall(b"GET /slow?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.sock.shutdown(socket.SHUT_WR)  # like `nc -N`: the request is complete, the client sends nothing more
    assert read_until_closed(sock).endswith(b"\r\n\r\nslept")


def test_websocket_app_exception_after_accept_is_1011(url: str) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(url, "/crash")) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1011  # RFC 6455 §7.4.1: "an unexpected condition"
    run(main())


def test_grace_period_bounds_the_shutdown(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    with server_process("servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--no-access-log",
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
        assert srv.wait(timeout=10) == 0
        thread.join()
        assert errors and "still running after the grace period" in srv.stderr
