"""The floor: the most requests per second Python can answer on this socket.

Theory of operation
-------------------
Every rung of the ladder is measured against this server.  It is an asyncio
``Protocol`` (on uvloop when installed, as uvicorn's reference configuration is) that
answers each request with bytes prepared at import time: no HTTP parser, no
environ or scope, no routing beyond one dictionary lookup of the request line, no
store, no JSON encoder.  What a layer costs is then "its req/s divided by this".

It reads just enough of each request to stay correct on keep-alive connections:

- a request head ends at the first blank line (RFC 9112 §2.1: ``start-line *( field-line
  CRLF ) CRLF``); pipelined heads in one read are all answered, in order (§9.3.2);
- a body is skipped by its ``Content-Length`` (§6.3 ¶5) so a POST's JSON is never
  mistaken for the next request.  Chunked uploads are refused with 501: the benchmark
  never sends one, and a floor that decoded chunks would no longer be a floor.

What it deliberately doesn't do: validate anything (a malformed request gets the
fixed answer of its path or a 404), send ``Date`` (the contract verifier is never run
against the floor; only the quick endpoint check is), or close idle connections.  It
is a measuring instrument, not a server: never expose it.

Run it as ``python -m layercake.bench.floor [--host H] [--port P]``; like our scratch
servers it prints ``layercake: serving on http://HOST:PORT`` to stderr once listening
and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from layers.shared.store import seed_item


def _response(status: bytes, content_type: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Server: layercake-floor\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


# Item 42 is the one the benchmark's ``item`` endpoint asks for (endpoints.py); the
# seed function is the store's own, so the bytes match what a layer sends.
_ITEM_NAME, _ITEM_PRICE, _ITEM_TAGS = seed_item(42)
_ITEM = json.dumps({"id": 42, "name": _ITEM_NAME, "price": _ITEM_PRICE, "tags": _ITEM_TAGS}).encode()
_CREATED = json.dumps({"id": 101, "name": "bench", "price": 9.99, "tags": ["bench"]}).encode()

# The answers, keyed by (method, the path up to '?' or a second path segment).  The
# bodies are the contract's (CONTRACT.md rows 2, 3, 4, 6), so a response is the same
# size on the floor as on a layer: what differs is only the work done to produce it.
ANSWERS: dict[tuple[bytes, bytes], bytes] = {
    (b"GET", b"/plaintext"): _response(b"200 OK", b"text/plain", b"Hello, World!"),
    (b"GET", b"/json"): _response(b"200 OK", b"application/json", b'{"message":"Hello, World!"}'),
    (b"GET", b"/items"): _response(b"200 OK", b"application/json", _ITEM),
    (b"POST", b"/items"): _response(b"201 Created", b"application/json", _CREATED, b"Location: /items/101\r\n"),
    (b"GET", b"/health"): _response(
        b"200 OK", b"application/json", b'{"status":"ok","startup_complete":true,"items":100}'
    ),
}
NOT_FOUND = _response(b"404 Not Found", b"application/json", b'{"detail":"Not Found"}')
NOT_IMPLEMENTED = _response(
    b"501 Not Implemented", b"text/plain", b"chunked uploads are not supported", b"Connection: close\r\n"
)


def answer_for(head: bytes) -> bytes:
    """The fixed answer for one request head (request line through the blank line)."""
    method, _, rest = head.partition(b" ")
    target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
    if target.startswith(b"/items/"):
        target = b"/items"  # /items/{id}: every id gets item 42's bytes
    return ANSWERS.get((method, target), NOT_FOUND)


def _content_length(head: bytes) -> int | None:
    """The value of Content-Length, 0 when absent, None for a chunked upload."""
    lowered = head.lower()
    if b"\r\ntransfer-encoding:" in lowered:
        return None
    marker = lowered.find(b"\r\ncontent-length:")
    if marker < 0:
        return 0
    end = lowered.find(b"\r\n", marker + 2)
    return int(lowered[marker + 17 : end].strip() or b"0")


class FloorProtocol(asyncio.Protocol):
    """One connection: split heads out of the stream, skip bodies, write fixed bytes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # create_server makes TCP transports
        self.buffer = b""
        self.skip = 0  # body bytes of the current request still to discard

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        while True:
            if self.skip:
                taken = min(self.skip, len(buffer))
                buffer, self.skip = buffer[taken:], self.skip - taken
                if self.skip:
                    break
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[: end + 4], buffer[end + 4 :]
            length = _content_length(head)
            if length is None:
                out.append(NOT_IMPLEMENTED)
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            self.skip = length
            out.append(answer_for(head))
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorProtocol, host, port, backlog=2048)
    bound = server.sockets[0].getsockname()
    print(f"layercake: serving on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m layercake.bench.floor", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args(argv)
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise SystemExit("--loop uvloop needs the uvloop package") from None
        else:
            uvloop.install()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
