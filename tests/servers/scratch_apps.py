"""Small inline apps for the scratch-server tests, importable by a server subprocess
(``python -m servers.scratch_wsgi tests.servers.scratch_apps:wsgi_app``)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

# What the apps observed, for tests that serve them in a thread of the test process.
EVENTS: list[str] = []


def started_slow() -> None:
    """Note that a slow request is in flight -- in EVENTS, and in the file SCRATCH_TEST_NOTES names (for a test
    whose server is a subprocess)."""
    EVENTS.append("slow started")
    if notes := os.environ.get("SCRATCH_TEST_NOTES"):
        with open(notes, "a") as f:
            f.write("slow started\n")


class ClosingBody:
    """A WSGI body iterable with close(), recording that the server called it."""

    def __init__(self, chunks: list[bytes], delay: float = 0.0) -> None:
        self.chunks = chunks
        self.delay = delay

    def __iter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            time.sleep(self.delay)
            yield chunk

    def close(self) -> None:
        EVENTS.append("close")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/echo":
        chunks = []  # read in pieces to the end: wsgi.input_terminated makes that safe even when chunked
        while chunk := environ["wsgi.input"].read(65536):
            chunks.append(chunk)
        body = b"".join(chunks)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/refuse":  # answers without reading the body
        start_response("413 Content Too Large", [("Content-Length", "0")])
        return [b""]
    if path == "/slow":
        started_slow()
        time.sleep(float(environ["QUERY_STRING"] or "0.5"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody([b"chunk %d\n" % i for i in range(50)], delay=0.02)
    if path == "/error-before":
        raise RuntimeError("secret detail")
    if path == "/error-after":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():  # type: ignore[no-untyped-def]
            yield b"first part"
            raise RuntimeError("secret detail")

        return body()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path.startswith("/environ"):
        keys = sorted(k for k in environ if k.isupper())
        text = "\n".join(f"{k}={environ[k]}" for k in keys).encode("latin-1")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text]
    body = f"{environ['REQUEST_METHOD']} {path}".encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    path = scope["path"]

    async def respond(body: bytes, status: int = 200) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await respond(body)
    elif path == "/refuse":
        await respond(b"", 413)
    elif path == "/slow":
        started_slow()
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
        await respond(b"slept")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        try:
            for i in range(200):
                await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            EVENTS.append(f"send raised {type(exc).__name__}")
            EVENTS.append(f"receive gave {(await receive())['type']}")
            return
        await send({"type": "http.response.body"})
    elif path == "/error-before":
        raise RuntimeError("secret detail")
    elif path == "/error-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first part", "more_body": True})
        raise RuntimeError("secret detail")
    elif path == "/bad-order":
        await send({"type": "http.response.body", "body": b"no start"})
    elif path == "/state":
        await respond(scope.get("state", {}).get("started", "no").encode())
    else:
        await respond(f"{scope['method']} {path}".encode())


async def websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    if scope["path"] == "/crash":
        await send({"type": "websocket.accept"})
        raise RuntimeError("the app fell over")
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            EVENTS.append(f"ws disconnect {message['code']}")
            return
        if message.get("text") == "close please":
            await send({"type": "websocket.close", "code": 4000})
            return
        await send({"type": "websocket.send", **{k: v for k, v in message.items() if k in ("text", "bytes")}})


async def failing_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable at db:5432"})
        return
    raise AssertionError("never serves")


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "only HTTP here"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan, still fine"})
