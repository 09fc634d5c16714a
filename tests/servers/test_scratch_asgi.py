"""scratch-asgi live, on a random loopback port, with httpx, raw sockets and the websockets client.

The checks made of scratch-asgi alone (WebSockets, lifespan, flow control, ASGI message order ...) or made
differently of scratch-wsgi; what both scratch servers must do alike runs for each in test_scratch_common.py."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import signal
import threading
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from layercake.bench.parsers import REQUEST
from layercake.bench.request_cost import CountingTransport
from layers.bare_asgi.app import app as bare_asgi_app
from servers import scratch_asgi
from servers.core.limits import Limits
from servers.core.parsers import PARSERS
from servers.scratch_asgi import running
from servers.scratch_common import loop_factory
from tests.servers import scratch_apps
from tests.servers.scratch_live import connect, read_response, read_until_closed, server_process, wait_for


@pytest.fixture
def url():  # type: ignore[no-untyped-def]
    with running(scratch_apps.asgi_app) as base:
        yield base


def ws_url(url: str, path: str) -> str:
    return url.replace("http://", "ws://") + path


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# --- HTTP ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("http", sorted(PARSERS))
def test_a_burst_of_requests_does_not_wake_the_garbage_collector(http: str, loop: str) -> None:
    """64 keep-alive connections each send a request in the same loop iteration, as under wrk: the objects of 64
    requests are made at once.  If each connection had freed its previous request's objects long before, CPython's
    collector (which runs when container allocations outrun deallocations by 700) would run on nearly every burst;
    freed as the next are made, it does not run at all.  Driven through the protocol objects, so the count is the
    server's and the application's alone."""
    for module in {http.replace("-", "_"), loop} - {"h11", "asyncio"}:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is in the servers extra")
    collections = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections.append(info["generation"])

    async def main() -> None:
        owner = scratch_asgi.Server(scratch_asgi.Config(bare_asgi_app, access_log=False, lifespan="off", http=http))
        owner.server_address, owner.state = ("127.0.0.1", 8000), {}
        connections = [(CountingTransport(), scratch_asgi.Connection(owner)) for _ in range(64)]
        for transport, connection in connections:
            connection.connection_made(transport)

        async def burst() -> None:
            for _, connection in connections:
                connection.data_received(REQUEST)
            while any(transport.writes == 0 for transport, _ in connections):
                await asyncio.sleep(0)
            for transport, _ in connections:
                transport.writes = 0

        for _ in range(3):  # warm up: every connection has a finished request behind it
            await burst()
        gc.collect()
        gc.callbacks.append(count)
        try:
            for _ in range(10):
                await burst()
        finally:
            gc.callbacks.remove(count)

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())
    assert collections == []


def test_plain_get_has_date_server_and_lifespan_state(url: str) -> None:
    r = httpx.get(url + "/state")
    assert r.status_code == 200 and r.text == "yes"  # set in lifespan startup, seen through scope["state"]
    assert r.headers["server"] == "scratch-asgi" and r.headers["date"].endswith(" GMT")


def test_large_upload_with_flow_control(url: str) -> None:
    data = bytes(range(256)) * 16384  # 4 MiB, far above the high-water mark
    assert httpx.post(url + "/echo", content=data).content == data


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


def test_header_timeout_and_others_still_served() -> None:
    with running(scratch_apps.asgi_app, limits=Limits(header_timeout=0.5)) as base:
        slow = connect(base)
        slow.sendall(b"GET / HTTP/1.1\r\nHost")
        assert httpx.get(base + "/fast").text == "GET /fast"
        assert read_until_closed(slow).startswith(b"HTTP/1.1 408 ")


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
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert read_response(sock).startswith(b"HTTP/1.1 101 ")
    sock.sendall(b"\x81\x02hi")  # an unmasked frame from a client (RFC 6455 §5.1: must fail the connection)
    data = read_until_closed(sock)
    assert data[:1] == b"\x88" and data[2:4] == (1002).to_bytes(2, "big")


def test_bad_websocket_version_is_426(url: str) -> None:
    sock = connect(url)
    sock.sendall(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
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
    with server_process(
        "servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--no-access-log", notes=notes
    ) as srv:
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
    with server_process(
        "servers.scratch_asgi", "tests.servers.scratch_apps:asgi_app", "--workers", "2", "--no-access-log"
    ) as srv:
        assert srv.url, srv.stderr
        assert all(httpx.get(srv.url + "/state").text == "yes" for _ in range(10))
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


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
