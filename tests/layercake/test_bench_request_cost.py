"""What one request costs in process (layercake/bench/request_cost.py).

No timing is asserted: the µs figures are only checked to exist.  What is checked is that the harness drives the
real protocols -- each request gets its response through the transport, the connection stays open -- and that the
Python call counts, which the docs quote, are the same twice.
"""

from __future__ import annotations

import asyncio

import pytest

from layercake.bench import request_cost
from layercake.bench.parsers import REQUEST
from layers.bare_asgi.app import app
from servers.scratch_common import loop_factory

SERVERS = ["floor", "scratch-asgi", "uvicorn"]


class KeepingTransport(request_cost.CountingTransport):
    """The harness's transport, keeping what is written (uvicorn writes a response's head and body apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self.data += bytes(data)


def available_pairs() -> list[tuple[str, str]]:
    return [(http, loop) for http, loop in request_cost.PAIRS if request_cost._available(http, loop)]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(("http", "loop"), available_pairs())
def test_each_request_is_answered_on_the_same_connection(server: str, http: str, loop: str) -> None:
    if server == "uvicorn":
        pytest.importorskip("uvicorn")

    async def three_requests() -> list[bytes]:
        transport = KeepingTransport()
        protocol = request_cost._protocol(server, http, loop, app)
        protocol.connection_made(transport)
        answers = []
        for _ in range(3):
            before = transport.writes
            protocol.data_received(REQUEST)
            for _ in range(100):  # bounded: a protocol that never answers fails the test instead of hanging it
                if transport.writes > before:
                    break
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            answers.append(transport.data)
            transport.data = b""
        assert not transport.is_closing()  # keep-alive: the connection carries the next request
        return answers

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        answers = runner.run(three_requests())
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"Hello, World!")


def test_rows_render_in_80_columns_and_calls_are_deterministic() -> None:
    rows = request_cost.request_costs(seconds=0.01, servers=("floor", "scratch-asgi"))
    again = request_cost.request_costs(seconds=0.01, servers=("floor", "scratch-asgi"))
    assert [r.python_calls for r in rows] == [r.python_calls for r in again]
    assert {r.server for r in rows} == {"the application alone", "floor", "scratch-asgi"}
    for r in rows:
        assert r.us > 0 and r.python_calls > 0
    by_pair = {(r.server, r.http): r for r in rows}
    for http, _ in available_pairs():
        assert by_pair["scratch-asgi", http].python_calls > by_pair["floor", http].python_calls
    text = request_cost.render(rows)
    assert "less floor" in text
    assert max(len(line) for line in text.splitlines()) <= 80
