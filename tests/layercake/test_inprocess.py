"""In-process means "our server core without a socket": for the same request, an application sees the same environ
(PEP 3333) or scope (ASGI) from the in-process drivers as from scratch-wsgi / scratch-asgi over a real socket.
Only what a socket decides may differ: the ports, and the objects behind wsgi.input / wsgi.errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from layercake.inprocess import ASGIDriver, WSGIDriver
from servers import scratch_asgi, scratch_wsgi
from tests.servers.scratch_live import Client, read_response

# Repeated fields, a Cookie pair, a name with "_" (dropped by both, like nginx and gunicorn), percent-encoding.
TARGET = "/caf%C3%A9/x?q=%20&a=1"
HEADERS = [
    ("Host", "example.test"),
    ("Accept", "a"),
    ("Accept", "b"),
    ("Cookie", "x=1"),
    ("Cookie", "y=2"),
    ("X_Forwarded_For", "evil"),
    ("X-Forwarded-For", "10.0.0.1"),
    ("Content-Type", "text/plain"),
]
BODY = b"hello"


def raw_request() -> bytes:
    fields = "".join(f"{k}: {v}\r\n" for k, v in HEADERS)
    return f"POST {TARGET} HTTP/1.1\r\n{fields}Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY


def seen_over_http(url: str) -> dict[str, Any]:
    client = Client(url)
    try:
        client.sendall(raw_request())
        response = read_response(client)
    finally:
        client.close()
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def wsgi_recorder(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    seen = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    seen["body"] = body.decode()
    out = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


async def asgi_recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    seen = plain({k: v for k, v in scope.items()})
    seen["body"] = body.decode()
    out = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


# What a socket decides, and nothing else.
WSGI_SOCKET_KEYS = {"SERVER_PORT", "REMOTE_PORT", "SERVER_NAME", "REMOTE_ADDR", "wsgi.multiprocess"}
ASGI_SOCKET_KEYS = {"server", "client"}


def test_wsgi_environ_in_process_equals_over_the_socket() -> None:
    driver = WSGIDriver(wsgi_recorder)
    in_process = driver.request("POST", TARGET, headers=HEADERS, body=BODY).json()
    with scratch_wsgi.running(wsgi_recorder) as url:
        over_http = seen_over_http(url)
    drop = lambda env: {k: v for k, v in env.items() if k not in WSGI_SOCKET_KEYS}  # noqa: E731
    assert drop(in_process) == drop(over_http)
    assert in_process["HTTP_COOKIE"] == "x=1; y=2" and "HTTP_X_FORWARDED_FOR" in in_process
    assert in_process["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"  # the "_" spelling was dropped, not merged in


@pytest.mark.parametrize("lifespan", [True, False], ids=["lifespan", "no-lifespan"])
def test_asgi_scope_in_process_equals_over_the_socket(lifespan: bool) -> None:
    driver = ASGIDriver(asgi_recorder, lifespan=lifespan)
    try:
        in_process = driver.request("POST", TARGET, headers=HEADERS, body=BODY).json()
    finally:
        driver.close()
    with scratch_asgi.running(asgi_recorder, lifespan="auto" if lifespan else "off") as url:
        over_http = seen_over_http(url)
    drop = lambda scope: {k: v for k, v in scope.items() if k not in ASGI_SOCKET_KEYS}  # noqa: E731
    assert drop(in_process) == drop(over_http)
    assert ("state" in in_process) is lifespan
