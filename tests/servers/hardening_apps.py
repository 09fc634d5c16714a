"""Small apps the hardening tests serve: predictable answers for the corpus, and apps that
misbehave on purpose (bad response headers, a wrong Content-Length, slow bodies, a
client that goes away) for the response and fault tests.

``wsgi_app`` and ``asgi_app`` answer the corpus the same way: ``GET``/``HEAD
/plaintext`` -> 200 ``Hello, World!``; ``POST /echo`` -> the whole body, read before
answering (so a chunked-syntax error is always answered by the server, never after a
response started); ``OPTIONS`` -> 200; ``CONNECT`` -> 405; anything else 404.  Paths
under ``/misbehave/`` select the faults.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

HELLO = b"Hello, World!"
# Where the fault apps write what they observed (the tests read it back): the test sets
# this in the server's environment.
NOTES = Path(os.environ.get("LAYERCAKE_TEST_NOTES", "/nonexistent"))


def note(text: str) -> None:
    with NOTES.open("a") as file:
        file.write(text + "\n")


# --- WSGI -------------------------------------------------------------------------------


class _Closing:
    """A WSGI iterable that streams slowly and records whether close() was called."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def __iter__(self):
        for index in range(self.chunks):
            time.sleep(0.01)
            yield b"x" * 65536 if index else b"first\n"

    def close(self) -> None:
        note("wsgi close called")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if path.startswith("/misbehave/"):
        return _wsgi_misbehave(path.removeprefix("/misbehave/"), environ, start_response)
    if method == "CONNECT":
        start_response("405 Method Not Allowed", [("Content-Length", "0")])
        return []
    if method == "OPTIONS":
        start_response("200 OK", [("Content-Length", "0"), ("Allow", "GET, HEAD, POST, OPTIONS")])
        return []
    if path == "/plaintext" and method in ("GET", "HEAD"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
        return [HELLO]
    if path == "/echo" and method == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def _wsgi_misbehave(what: str, environ: dict[str, Any], start_response: Any) -> Any:
    if what in ("header-crlf", "header-lf", "header-nul", "name-crlf"):
        bad = {
            "header-crlf": ("X-Bad", "a\r\nInjected: yes"),
            "header-lf": ("X-Bad", "a\nInjected: yes"),
            "header-nul": ("X-Bad", "a\x00b"),
            "name-crlf": ("X-Bad\r\nInjected", "yes"),
        }[what]
        start_response("200 OK", [("Content-Length", "2"), bad])
        return [b"ok"]
    if what == "length-short":  # declares 100 bytes, sends 5
        start_response("200 OK", [("Content-Length", "100")])
        return [b"short"]
    if what == "length-long":  # declares 2 bytes, sends 5
        start_response("200 OK", [("Content-Length", "2")])
        return [b"long!"]
    if what in ("204", "304"):
        start_response(f"{what} X", [])
        return [b"a body that must not be sent"]
    if what == "stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Closing(200)
    if what == "slow":
        note("slow started")
        time.sleep(float(environ.get("QUERY_STRING") or "0.2"))
        start_response("200 OK", [("Content-Length", "4")])
        return [b"slow"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


# --- ASGI -------------------------------------------------------------------------------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if path.startswith("/misbehave/"):
        await _asgi_misbehave(path.removeprefix("/misbehave/"), scope, receive, send)
        return
    if method == "CONNECT":
        await _answer(send, 405, b"")
    elif method == "OPTIONS":
        await _answer(send, 200, b"", [(b"allow", b"GET, HEAD, POST, OPTIONS")])
    elif path == "/plaintext" and method in ("GET", "HEAD"):
        await _answer(send, 200, HELLO, [(b"content-type", b"text/plain")])
    elif path == "/echo" and method == "POST":
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await _answer(send, 200, body, [(b"content-type", b"application/octet-stream")])
    else:
        await _answer(send, 404, b"")


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*(headers or []), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _asgi_misbehave(what: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if what in ("header-crlf", "header-lf", "header-nul", "name-crlf"):
        bad = {
            "header-crlf": (b"x-bad", b"a\r\nInjected: yes"),
            "header-lf": (b"x-bad", b"a\nInjected: yes"),
            "header-nul": (b"x-bad", b"a\x00b"),
            "name-crlf": (b"x-bad\r\ninjected", b"yes"),
        }[what]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2"), bad]})
            await send({"type": "http.response.body", "body": b"ok"})
        except Exception as error:  # the server refusing is the point; let it answer 500
            note(f"asgi send refused: {type(error).__name__}")
            raise
    elif what == "length-short":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"short"})
    elif what == "length-long":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"long!"})
    elif what in ("204", "304"):
        await send({"type": "http.response.start", "status": int(what), "headers": []})
        await send({"type": "http.response.body", "body": b"a body that must not be sent"})
    elif what == "stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        # Wait for the client to go away, as a long stream (server-sent events) would.
        message = await receive()  # the (empty) request body first
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()
        if message["type"] == "http.request":
            # ASGI HTTP spec: after the last body message, receive() waits for the disconnect.
            message = await receive()
        note(f"asgi received {message['type']}")
        try:
            for _ in range(200):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                await asyncio.sleep(0.01)
            note("asgi send never raised")
        except Exception as error:
            note(f"asgi send raised {type(error).__name__}")
    elif what == "slow":
        note("slow started")
        await asyncio.sleep(float(scope["query_string"] or b"0.2"))
        await _answer(send, 200, b"slow")
    else:
        await _answer(send, 404, b"")
