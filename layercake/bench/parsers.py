"""What the parser costs: µs and Python calls to parse one request, and to answer it, per parser backend.

Theory of operation
-------------------
The socket benchmark says how fast a server is; this says how much of one request's time is the parser.  No socket,
no server, no application: for each backend in ``servers/core/parsers.py`` ``PARSERS`` it measures, on the request
wrk sends (``GET /plaintext`` with a ``Host`` header and nothing else),

* **parse** -- a fresh parser (as the connection makes for a connection's first request) fed the whole request, asked for
  events until ``EndOfMessage``;
* **cycle** -- the same through the sans-I/O connection (``servers/core/connection.py``): the head reader, the strict
  gate, the parser, then the response writer building ``200 Hello, World!`` with its ``Date`` and ``Server``, on one
  keep-alive connection, as each of wrk's requests goes through a scratch server minus the socket and the app;

and, as the floor under both, the library alone: h11's ``Connection`` parsing the request and writing the response
with its own ``send`` (what uvicorn's h11 protocol does), httptools' parser with callbacks that do nothing.

Two figures per row: *µs per request* (the median of batches, timed with ``perf_counter`` -- noisy on a busy machine,
as any timing) and *Python calls* (frames entered, ``sys.setprofile`` ``call`` events, for one request after a
warm-up: deterministic, the same on a busy machine as on a quiet one) with *C calls* (``c_call``: builtins and C
functions).  Compiled code is invisible to the profiler: neither llhttp's ``feed_data`` (a Cython method) nor
h11-mypyc's compiled functions are counted -- which is the point: what is left is what the interpreter runs.

What it deliberately does not do: measure bodies (a chunked upload is the parser's other job; the ladder's ``create``
endpoint covers it over sockets) or the event loop (``servers/bench_scratch.py`` does, with wrk).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from servers.core.events import NEED_DATA, EndOfMessage
from servers.core.limits import Limits
from servers.core.parsers import PARSERS, MissingParserPackage, RequestParser, parser_class

#: What wrk sends for ``wrk http://127.0.0.1:PORT/plaintext``: the request every socket figure is made of.
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
BODY = b"Hello, World!"
RESPONSE_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]


@dataclass
class ParserCost:
    backend: str  # a PARSERS name, or "h11 alone" / "httptools alone" for the library floor
    what: str  # "parse" | "cycle"
    us: float  # median µs per request
    python_calls: int
    c_calls: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(name: str) -> Callable[[], None]:
    cls: Callable[[Limits], RequestParser] = PARSERS[name]
    limits = Limits()

    def once() -> None:
        parser = cls(limits)
        parser.receive_data(REQUEST)
        while type(parser.next_event()) is not EndOfMessage:
            pass

    return once


def _cycle(name: str) -> Callable[[], None] | None:
    """One request through a keep-alive ServerConnection with parser ``name`` (None before the connection exists)."""
    try:
        from servers.core.connection import ServerConnection
    except ImportError:
        return None
    conn = ServerConnection(Limits(), server_header=b"scratch", parser=name)

    def once() -> None:
        conn.receive_data(REQUEST)
        conn.next_event()  # the RequestHead
        writer = conn.writer
        writer.start(200, RESPONSE_HEADERS)  # type: ignore[union-attr]  # the connection made this cycle's writer with its head
        writer.body(BODY, last=True)  # type: ignore[union-attr]  # the connection made this cycle's writer with its head
        while conn.next_event() is not NEED_DATA:  # EndOfMessage, then the connection waits for the next head
            pass

    return once


def _h11_alone() -> Callable[[], None]:
    import h11

    headers = [*RESPONSE_HEADERS, (b"date", b"Tue, 01 Dec 2026 21:00:00 GMT"), (b"server", b"h11")]

    def once() -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(REQUEST)
        conn.next_event()
        conn.next_event()
        conn.send(h11.Response(status_code=200, headers=headers))
        conn.send(h11.Data(data=BODY))
        conn.send(h11.EndOfMessage())

    return once


def _httptools_alone() -> Callable[[], None]:
    import httptools

    class Nothing:
        def on_url(self, url: bytes) -> None: ...
        def on_header(self, name: bytes, value: bytes) -> None: ...
        def on_headers_complete(self) -> None: ...
        def on_message_complete(self) -> None: ...

    protocol = Nothing()

    def once() -> None:
        httptools.HttpRequestParser(protocol).feed_data(REQUEST)

    return once


def count_calls(run: Callable[[], None]) -> tuple[int, int]:
    """(Python calls, C calls) made by one ``run()``, after a warm-up, with the collector off."""
    for _ in range(20):
        run()
    counts = {"call": 0, "c_call": 0}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in counts:
            counts[event] += 1

    gc.disable()
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        gc.enable()
    return counts["call"] - 1, counts["c_call"] - 1  # minus the profiler's own exit from setprofile / run's frame


def time_us(run: Callable[[], None], seconds: float, batch: int = 200) -> float:
    """Median µs per call over batches of ``batch`` calls for about ``seconds``."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter()
        for _ in range(batch):
            run()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def parser_costs(seconds: float = 0.3) -> list[ParserCost]:
    """Every installed backend's parse and cycle cost, then the libraries alone; see the module docstring."""
    rows: list[ParserCost] = []
    cases: list[tuple[str, str, Callable[[], None] | None]] = []
    for name in PARSERS:
        try:
            parser_class(name)
        except MissingParserPackage:
            continue
        cases += [(name, "parse", _parse(name)), (name, "cycle", _cycle(name))]
    cases.append(("h11 alone", "cycle", _h11_alone()))
    try:
        cases.append(("httptools alone", "parse", _httptools_alone()))
    except ImportError:
        pass
    for backend, what, run in cases:
        if run is None:
            continue
        calls, c_calls = count_calls(run)
        rows.append(ParserCost(backend, what, round(time_us(run, seconds), 2), calls, c_calls))
    return rows


def render(rows: list[ParserCost]) -> str:
    """A plain-text table (the bench script prints it; ``layercake bench --experiment parsers`` shows it too)."""
    lines = [
        "what the parser costs, in process (one GET /plaintext;",
        "cycle = head reader + strict gate + parser + response writer):",
        f"  {'backend':16} {'what':6} {'µs/request':>11} {'Python calls':>13} {'C calls':>8}",
    ]
    for r in rows:
        lines.append(f"  {r.backend:16} {r.what:6} {r.us:11.2f} {r.python_calls:13d} {r.c_calls:8d}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(parser_costs(float(sys.argv[1]) if len(sys.argv) > 1 else 0.3)))
