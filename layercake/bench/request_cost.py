"""What one request costs an ASGI server in process: the whole server, the socket left out.

Theory of operation
-------------------
The socket benchmark (``servers/bench_scratch.py``) measures a server with the kernel, wrk and the machine's noise
around it; the parser table (``parsers.py``) measures only the sans-I/O core.  Between the two is the question a
ratio like "scratch-asgi at 0.7x uvicorn" raises: *which* part of the server costs what.  This module runs the
servers' own protocol classes -- scratch-asgi's ``Connection`` and uvicorn's ``H11Protocol`` / ``HttpToolsProtocol``
-- on a real event loop (asyncio or uvloop), with a transport that only counts what is written.  Each request is
what wrk sends (``GET /plaintext``), fed to ``data_received``; the loop then runs until the response is written:
the parser, the connection, the task that runs the application, ``receive``/``send`` and the response writer, all
as in production, minus the system calls.

Rows, for each parser and loop pair both servers offer:

* **floor** -- a protocol that answers every ``data_received`` with fixed bytes: the loop and the measuring
  harness (the in-process twin of the socket floor).  Not all of the harness: it resumes twice per request for the
  floor and four times for a server, and each resumption is a Python call, so "less floor" keeps a few of them;
* **uvicorn** and **scratch-asgi** -- the same bare ASGI application (``layers/bare_asgi``), lifespan off, access
  log off, an empty lifespan state copied into each scope by both.

Two figures per row, as in ``parsers.py``: *µs per request* (median of batches of CPU time, ``process_time``: noisy
on a busy machine, as any timing) and *Python calls* for one request after a warm-up (``sys.setprofile`` ``call``
events, the fewest of three requests so the once-a-second Date refresh is left out: deterministic, including the loop's own Python code under asyncio, and the harness's -- which the floor
row shows, so subtract it).  The bare application alone is a row too: what is left is the server.

What it deliberately does not do: sockets, TLS, WSGI servers (a threaded server has no protocol object to drive
without a socket; ``bench_scratch`` measures them), or request bodies.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from layercake.bench.parsers import REQUEST
from servers.core.asgi import http_scope
from servers.core.events import RequestHead

#: The (parser, loop) pairs both servers offer, fastest first; a pair whose packages are missing is skipped.
PAIRS = (("httptools", "uvloop"), ("h11", "asyncio"))
_FLOOR_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"


@dataclass
class RequestCost:
    server: str  # "floor" | "uvicorn" | "scratch-asgi" | "the application alone"
    http: str
    loop: str
    us: float  # median CPU µs per request
    python_calls: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Socket:
    """What the protocols ask of the transport's socket: addresses and options, nothing sent."""

    family = 2  # AF_INET

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8000)

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 50000)

    def setsockopt(self, *args: Any) -> None:
        pass


class CountingTransport(asyncio.Transport):
    """A transport that sends nothing: it counts the writes, so the harness knows a response went out."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False
        self._socket = _Socket()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000), "socket": self._socket}
        return extra.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class _Floor(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(_FLOOR_RESPONSE)  # type: ignore[attr-defined]  # a CountingTransport, made above


def _protocol(server: str, http: str, loop: str, app: Any) -> asyncio.Protocol:
    if server == "floor":
        return _Floor()
    if server == "uvicorn":
        import uvicorn
        from uvicorn.server import ServerState

        config = uvicorn.Config(app, http=http, loop=loop, access_log=False, lifespan="off", log_config=None)
        config.load()
        protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]  # uvicorn's protocols take these keywords
            config=config, server_state=ServerState(), app_state={}
        )
        return protocol
    from servers import scratch_asgi
    from servers.core.limits import Limits

    config_ = scratch_asgi.Config(app, limits=Limits(), access_log=False, lifespan="off", http=http)
    owner = scratch_asgi.Server(config_)
    owner.server_address = ("127.0.0.1", 8000)
    owner.state = {}  # as uvicorn's app_state: an empty state dict, copied into every scope
    return scratch_asgi.Connection(owner)


async def _measure(server: str, http: str, loop: str, app: Any, seconds: float) -> RequestCost:
    transport = CountingTransport()
    protocol = _protocol(server, http, loop, app)
    protocol.connection_made(transport)

    async def requests(count: int) -> None:
        for _ in range(count):
            before = transport.writes
            protocol.data_received(REQUEST)
            while transport.writes == before:  # the app runs as a task: let the loop run it
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # and let the task finish (its done callbacks) before the next request

    return await _figures(server, http, loop, requests, seconds)


async def _measure_app(app: Any, seconds: float) -> RequestCost:
    """The bare application alone: a scope, a receive and a send that do nothing."""
    # The scope scratch-asgi builds for wrk's request (the core's builder), with an empty lifespan state.
    head = RequestHead(b"GET", b"/plaintext", b"1.1", [(b"host", b"127.0.0.1:8000")])
    scope = http_scope(head, server=("127.0.0.1", 8000), client=("127.0.0.1", 50000), state={})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def requests(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    return await _figures("the application alone", "-", "-", requests, seconds)


async def _figures(
    server: str, http: str, loop: str, requests: Callable[[int], Awaitable[None]], seconds: float
) -> RequestCost:
    await requests(500)  # warm-up: caches, the Date header, the parser objects
    counts: list[int] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counts[-1] += 1

    # The fewest calls of three single requests: a server formats its Date header once a second (RFC 9110
    # §6.6.1's resolution), so the one request that crosses a second boundary runs one call more.
    gc.collect()
    for _ in range(3):
        counts.append(0)
        sys.setprofile(profile)
        try:
            await requests(1)
        finally:
            sys.setprofile(None)
    calls = min(counts)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    batch = 200
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.process_time()
        await requests(batch)
        samples.append((time.process_time() - start) / batch * 1e6)
    return RequestCost(server, http, loop, round(statistics.median(samples), 1), calls)


def _available(http: str, loop: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in {http, loop} - {"asyncio"})


def request_costs(
    seconds: float = 0.5, servers: tuple[str, ...] = ("floor", "uvicorn", "scratch-asgi")
) -> list[RequestCost]:
    """Every row of the module docstring whose packages are installed (uvicorn rows need uvicorn)."""
    from layers.bare_asgi.app import app
    from servers.scratch_common import loop_factory

    rows = [asyncio.run(_measure_app(app, seconds))]
    for http, loop in PAIRS:
        if not _available(http, loop):
            continue
        for server in servers:
            if server == "uvicorn" and not _available("uvicorn", "asyncio"):
                continue
            with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
                rows.append(runner.run(_measure(server, http, loop, app, seconds)))
    return rows


def render(rows: list[RequestCost]) -> str:
    """A plain-text table in 80 columns, with each row's figures less its pair's floor (the loop and the harness):
    what is left is the server and the application."""
    floors = {(r.http, r.loop): r for r in rows if r.server == "floor"}
    lines = [
        "what one request costs in process, the socket left out (GET /plaintext, bare",
        "ASGI app); less floor = less the loop and most of the harness: server + app",
        f"  {'server':22} {'pair':17} {'µs/req':>7} {'calls':>6} {'less floor':>10} {'calls':>6}",
    ]
    for r in rows:
        floor = floors.get((r.http, r.loop))
        less = f"{r.us - floor.us:10.1f} {r.python_calls - floor.python_calls:6d}" if floor and r is not floor else ""
        pair = f"{r.http}+{r.loop}" if r.http != "-" else "-"
        lines.append(f"  {r.server:22} {pair:17} {r.us:7.1f} {r.python_calls:6d} {less}".rstrip())
    return "\n".join(lines)


if __name__ == "__main__":  # python -m layercake.bench.request_cost [seconds per row]
    print(render(request_costs(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)))
